"""Fixtures for the client's tests: ``real_node`` (tests/cli/real_node.py) and zfs-fuse,
which it needs."""

from tests.cli.real_node import real_node
from tests.zfs.conftest import zfs_service

__all__ = ["real_node", "zfs_service"]
