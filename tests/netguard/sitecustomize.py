"""Installs the network guard (netguard.py) in every Python process started with this folder on
PYTHONPATH. A test that puts another sitecustomize first imports `netguard` from it too."""

import netguard  # noqa: F401
