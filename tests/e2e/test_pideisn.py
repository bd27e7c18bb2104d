"""pideisn in the built image under QEMU (TCG, user-mode networking): DHCP from QEMU's
server, a declared service (the demo overlay's `hello`) reached from the host through a
forwarded port and restarted after it exits, and an ACPI power-off (QMP system_powerdown)
that stops services, syncs filesystems and lets QEMU exit by itself."""

from __future__ import annotations

import re

import pytest

from .conftest import ROOT
from .vm import Machine

pytestmark = pytest.mark.e2e
BOOT_TIMEOUT = 300


def test_dhcp_service_restart_and_acpi_power_off(demo_uki, tmp_path):
    vm = Machine(ROOT, demo_uki, tmp_path)
    try:
        ready = vm.wait_for("pideisn: ready (uptime", BOOT_TIMEOUT)
        # QEMU's user-mode DHCP server hands out 10.0.2.15/24 with 10.0.2.2 as the router.
        assert re.search(r"eth0 10\.0\.2\.15/24\b", ready), ready
        vm.wait_for("eth0: DHCPv4 10.0.2.15/24 via 10.0.2.2 dns 10.0.2.3", 1)
        assert vm.console().index("hello: ready") < vm.console().index("pideisn: ready")

        first = vm.ask(b"hello\n")
        assert first.startswith("hello from pid ")
        mark = len(vm.lines)
        assert vm.ask(b"exit\n") == first
        vm.wait_for("hello: exited (exit 3)", 60, start=mark)
        vm.wait_for("hello: ready again", 120, start=mark)
        second = vm.ask(b"hello\n")
        assert second.startswith("hello from pid ") and second != first

        mark = len(vm.lines)
        vm.qmp("system_powerdown")
        status = vm.wait_exit(120)
        console = vm.console(mark)
        assert status == 0, console
        assert "ACPI power button: power off" in console
        assert "hello: stopped" in console and "services stopped" in console
        assert "filesystems synced" in console
        assert console.index("services stopped") < console.index("powering off")
    finally:
        vm.close()
