"""pideisn in the built image under QEMU (TCG, user-mode networking): DHCP from QEMU's
server, a declared service (the demo overlay's `hello`) reached from the host through a
forwarded port and restarted after it exits, and an ACPI power-off (QMP system_powerdown)
that stops services, syncs filesystems and lets QEMU exit by itself."""

from __future__ import annotations

import re

import pytest

from mvirt_build import config, uki
from mvirt_build.compare import decompress
from mvirt_build.cpio import Archive, Entry
from mvirt_build.stages.initramfs import SITE_DIR

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
        # /usr comes from the image's squashfs (UsrImage=squashfs), mounted before the network.
        vm.wait_for("pideisn: /usr mounted from /usr.squashfs (/dev/loop", 1)

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


def test_broken_pideisn_module_still_powers_off_on_the_power_button(built_uki, tmp_path):
    # A test variant of the image: the built initramfs, unpacked, plus an appended cpio that
    # replaces pideisn's init module with bytes that are not bytecode (the kernel unpacks both
    # archives in order, the later file wins; a legacy lz4 stream has no end marker, so
    # nothing can follow it compressed).
    layout = uki.inspect(built_uki.read_bytes())
    contents = {name: layout.section(name).data for name in uki.APPENDED}  # type: ignore[union-attr]
    overlay = Archive()
    overlay.add(Entry(f"{SITE_DIR}/mvirt/pideisn/init.pyc", "file", 0o644, b"not bytecode"))
    initrd = decompress(contents[".initrd"])
    contents[".initrd"] = initrd + b"\0" * (-len(initrd) % 4) + overlay.write(0)
    cfg = config.load(ROOT)
    broken = tmp_path / "broken-pideisn.efi"
    broken.write_bytes(uki.assemble(cfg.uki.stub.read_bytes(), contents, b""))
    vm = Machine(ROOT, broken, tmp_path)
    try:
        vm.wait_for("/init: cannot import mvirt.pideisn.init", BOOT_TIMEOUT)
        vm.wait_for("/init: emergency loop", 60)
        mark = len(vm.lines)
        vm.qmp("system_powerdown")
        status = vm.wait_exit(120)
        console = vm.console(mark)
        assert status == 0, console
        assert "/init: powering off" in console
        assert "pideisn: ready" not in vm.console()
    finally:
        vm.close()
