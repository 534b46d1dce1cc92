"""The test suite's network guard, loaded by every Python process the tests start (via PYTHONPATH)
and by pytest itself (tests/conftest.py): connections to anything but this machine are refused, so a
passing suite proves nothing downloads at run time. Unix sockets and loopback are untouched."""

import errno
import ipaddress
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
BLOCKED = "network blocked by the test suite"


def _off_machine(sock: socket.socket, address) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return False
    host = str(address[0]).split("%")[0]
    if host in ("localhost", ""):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: resolving and connecting to it is going off the machine


def connect(self, address):
    if _off_machine(self, address):
        raise OSError(errno.ENETUNREACH, f"{BLOCKED}: {address[0]}:{address[1]}")
    return _connect(self, address)


def connect_ex(self, address):
    if _off_machine(self, address):
        return errno.ENETUNREACH
    return _connect_ex(self, address)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
