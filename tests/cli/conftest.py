"""Fixtures for the client's tests: ``real_node`` (tests/cli/real_node.py) and the daemon
fixtures it is made of."""

from tests.cli.real_node import real_node
from tests.conftest import log_daemon, start_log_daemon
from tests.net.conftest import netns, start_net
from tests.vmm.conftest import start_vmm
from tests.zfs.conftest import pool, start_zfs_daemon, zfs_service

__all__ = [
    "log_daemon",
    "netns",
    "pool",
    "real_node",
    "start_log_daemon",
    "start_net",
    "start_vmm",
    "start_zfs_daemon",
    "zfs_service",
]
