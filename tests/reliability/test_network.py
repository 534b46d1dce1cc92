"""7. No network: the suite runs with off-machine connections refused (tests/netguard), in this process
and in every Python process the tests start; loopback still works."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

UNROUTABLE = ("192.0.2.1", 443)  # TEST-NET-1: documentation addresses, never a real host


def test_this_process_cannot_reach_the_network():
    with pytest.raises(OSError, match="network blocked by the test suite"):
        socket.create_connection(UNROUTABLE, timeout=2)


def test_child_processes_cannot_reach_the_network():
    code = f"import socket; socket.create_connection({UNROUTABLE!r}, timeout=2)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "network blocked by the test suite" in result.stderr


def test_hostnames_are_refused_too():
    # Refused by the guard, or already by a resolver that has no network to ask.
    with pytest.raises(OSError, match="network blocked|name resolution|Name or service"):
        socket.create_connection(("huggingface.co", 443), timeout=2)


def test_loopback_still_works():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
