"""mount(2), umount2(2) and reboot(2) through `_ctypes`: real calls in namespaces of their own,
errors with their errno, and no `ctypes` package loaded by PID 1's startup imports."""

import shutil
import subprocess
import sys

import pytest

from mvirt.pideisn import syscalls


def run_in_namespaces(flags: list[str], script: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    return subprocess.run(
        ["unshare", *flags, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_startup_imports_do_not_load_the_ctypes_package():
    # Every module PID 1 imports at boot costs time under emulation; ctypes' own set-up
    # (C types, struct, endianness helpers) is more than the foreign calls need.
    script = (
        "import sys\n"
        "import mvirt.pideisn.init\n"
        "print(sorted(m for m in sys.modules if m.startswith('ctypes')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_mount_and_umount_reach_the_kernel(tmp_path):
    script = (
        "from mvirt.pideisn import syscalls\n"
        f"target = {str(tmp_path)!r}\n"
        "syscalls.mount('tmpfs', target, 'tmpfs', syscalls.MS_NOSUID, 'size=1m,mode=0700')\n"
        "line = [l for l in open('/proc/self/mounts') if l.split()[1] == target][0]\n"
        "print(line.split()[2], 'nosuid' in line.split()[3], 'size=1024k' in line)\n"
        "syscalls.umount(target, syscalls.MNT_DETACH)\n"
        "print(any(l.split()[1] == target for l in open('/proc/self/mounts')))\n"
    )
    proc = run_in_namespaces(["--mount", "--propagation", "private"], script)
    if proc.returncode != 0 and "unshare failed" in proc.stderr:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["tmpfs", "True", "True", "False"]


def test_a_refused_call_raises_oserror_with_its_errno(tmp_path):
    with pytest.raises(OSError) as raised:
        syscalls.mount("none", str(tmp_path / "missing"), "tmpfs")
    assert raised.value.errno == 2 and "mount tmpfs on" in str(raised.value)
    with pytest.raises(OSError) as raised:
        syscalls.umount(str(tmp_path))  # not a mount point
    assert raised.value.errno == 22


def test_power_off_from_a_pid_namespace_ends_its_init_with_sigint():
    # reboot(2) in a PID namespace ends that namespace's init (SIGINT for power off): the magic
    # number, above 2**31, must reach the kernel as the C int it expects.
    script = "from mvirt.pideisn import syscalls\nsyscalls.reboot(syscalls.RB_POWER_OFF)\n"
    proc = run_in_namespaces(["--pid", "--fork", "--kill-child"], script)
    if "unshare failed" in proc.stderr:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode in (-2, 128 + 2), (proc.returncode, proc.stderr)
