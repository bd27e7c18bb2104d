"""The initramfs stage's own steps: the size table and the interpreter's environment."""

import os
from pathlib import Path

import pytest
import zstandard

from mvirt_build import budget
from mvirt_build.config import InitramfsConfig
from mvirt_build.cpio import Archive, Entry
from mvirt_build.graph import Context
from mvirt_build.run import output
from mvirt_build.stages import initramfs

from .build_config import small_config


def test_size_table_compresses_nothing_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The table prints what the budget measured once per component; printing it compresses
    # nothing (the archive itself is compressed exactly once, by the stage).
    sizes = {name: {"raw": 0, "compressed": 0} for name in budget.COMPONENTS}
    sizes["our code"] = {"raw": 3 * 2**20, "compressed": 2**20}
    sizes["interpreter + stdlib"] = {"raw": 2**20, "compressed": 2**19}

    def no_compressor(*args: object, **kwargs: object) -> None:
        raise AssertionError("the size table must not compress the initramfs a second time")

    monkeypatch.setattr(zstandard, "ZstdCompressor", no_compressor)
    lines = initramfs.size_breakdown(sizes, raw=4 * 2**20, compressed=2**20)
    assert any(line.split()[:2] == ["our", "code"] and "3.00 MiB ->" in line for line in lines)
    assert lines[-1].split()[0] == "total" and "4.00 MiB ->" in lines[-1]


def test_clean_environment_keeps_host_python_variables_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("PYTHONSTARTUP", str(tmp_path / "startup.py"))
    seen = output(["env"], env=initramfs.CHROOT_ENV, clean_env=True)
    assert "PYTHONPATH" not in seen and "PYTHONSTARTUP" not in seen
    assert "PYTHONHASHSEED=0" in seen


def _host_python_tree(tmp_path: Path) -> Path | None:
    """A rootfs tree from the shared cache, if a build made one on this machine."""
    cache = Path(os.environ.get("MVIRT_CACHE_DIR") or Path.home() / ".cache/mvirt") / "rootfs"
    trees = sorted(cache.glob("*/tree")) if cache.is_dir() else []
    return trees[0] if trees and os.geteuid() == 0 else None


def test_image_interpreter_ignores_host_python_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A PYTHONPATH on the host that shadows a module must not reach the image's imports."""
    tree = _host_python_tree(tmp_path)
    if tree is None:
        pytest.skip("no rootfs tree in the cache yet (run `mvirt-build rootfs`)")
    shadow = tree / "tmp" / f"mvirt-shadow-{os.getpid()}"
    shadow.mkdir()
    try:
        (shadow / "socket.py").write_text("raise SystemExit('host module imported')\n")
        monkeypatch.setenv("PYTHONPATH", "/" + str(shadow.relative_to(tree)))
        cfg = small_config(tmp_path, initramfs=InitramfsConfig("socket:socket", (), (), (), 3))
        modules = initramfs.collect_modules(Context(cfg), tree)
        assert "/usr/lib/python3.11/socket.py" in modules["source"]
    finally:
        (shadow / "socket.py").unlink()
        shadow.rmdir()


def test_early_files_are_what_pid1_needs_before_mounting_usr(tmp_path: Path) -> None:
    """With UsrImage=squashfs the archive unpacks only these under /usr: the interpreter and
    its libraries, pideisn's package, and what /init's rescue loop imports; not the daemons'
    dependencies."""
    tree = _host_python_tree(tmp_path)
    if tree is None:
        pytest.skip("no rootfs tree in the cache yet (run `mvirt-build rootfs`)")
    cfg = small_config(
        tmp_path,
        initramfs=InitramfsConfig("mvirt.pideisn.init:main", (), (), (), 3, "lz4", "squashfs"),
    )
    site = initramfs.SITE_DIR
    archive = Archive()
    archive.add(Entry(f"{site}/mvirt/pideisn/supervisor.pyc", "file", 0o644, b""))
    archive.add(Entry(f"{site}/mvirt/vmm/manager.pyc", "file", 0o644, b""))
    early = initramfs.early_paths(Context(cfg), tree, archive)
    assert {"/usr/bin/python3.11", f"{site}/mvirt/pideisn/init.pyc",
            f"{site}/mvirt/pideisn/supervisor.pyc", "/usr/lib/python3.11/ctypes/__init__.pyc",
            "/usr/lib/python3.11/struct.pyc"} <= early  # fmt: skip
    assert any(path.startswith("/usr/lib/x86_64-linux-gnu/libc.so") for path in early)
    assert f"{site}/mvirt/vmm/manager.pyc" not in early
    assert not any("/grpc/" in path or "/cryptography/" in path for path in early)
