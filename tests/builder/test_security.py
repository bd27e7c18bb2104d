"""Paths from configuration never become more than a path: in the image, and in QEMU options."""

import subprocess
from pathlib import Path

import pytest

from mvirt_build.errors import BuildError
from mvirt_build.lockfile import load_lock
from mvirt_build.qemu import QEMU, QemuMachine, option_path, plain_option_path

ENTRY = """
[[download]]
name = "tool"
url = "https://example.invalid/tool"
sha256 = "unknown"
size = "unknown"
install = "{install}"
mode = "0755"
check = "none"
note = ""
"""


@pytest.mark.parametrize(
    "install",
    ["/usr/bin/../../etc/shadow", "/usr/bin/./tool", "/usr//bin/tool", "/etc/passwd", "/init",
     "usr/bin/tool", "/usr/bin/tool\\nx"],
)  # fmt: skip
def test_install_path_cannot_leave_the_allowed_places(tmp_path: Path, install: str) -> None:
    lock = tmp_path / "downloads.lock"
    lock.write_text(ENTRY.format(install=install))
    with pytest.raises(BuildError, match="install"):
        load_lock(lock)


def test_ordinary_install_paths_are_accepted(tmp_path: Path) -> None:
    lock = tmp_path / "downloads.lock"
    lock.write_text(ENTRY.format(install="/usr/share/mvirt/hypervisor-fw"))
    assert load_lock(lock).get("tool").install == "/usr/share/mvirt/hypervisor-fw"


def test_comma_in_a_disk_path_cannot_add_qemu_options(tmp_path: Path) -> None:
    """A folder called `x,readonly=off,snapshot=on` stays part of the file name: QEMU itself
    opens the image at that path."""
    folder = tmp_path / "x,format=qcow2,snapshot=on"
    folder.mkdir()
    disk = folder / "esp.img"
    disk.write_bytes(bytes(1 << 20))
    argv = QemuMachine(disk=disk, ovmf_vars=disk).command()
    drive = next(a for a in argv if a.startswith("if=none,id=boot"))
    assert drive.endswith("/x,,format=qcow2,,snapshot=on/esp.img")
    # QEMU parses the option back to the same file (it fails on a bad option otherwise).
    probe = subprocess.run(
        [QEMU, "-machine", "none", "-nodefaults", "-display", "none", "-S", "-drive", drive,
         "-monitor", "none", "-daemonize", "-pidfile", str(tmp_path / "pid")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    try:
        assert probe.returncode == 0, probe.stderr
    finally:
        pid = tmp_path / "pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], check=False)


def test_paths_qemu_or_cloud_hypervisor_cannot_carry_are_refused() -> None:
    with pytest.raises(BuildError, match="control characters"):
        option_path(Path("/tmp/a\nb"))
    with pytest.raises(BuildError, match="cloud-hypervisor"):
        plain_option_path(Path("/tmp/a,b/esp.img"))
    assert plain_option_path(Path("/tmp/ab/esp.img")) == "/tmp/ab/esp.img"
