"""DT_NEEDED closure and symlink resolution on this machine's real binaries."""

from pathlib import Path

import pytest

from mvirt_build import elfdeps
from mvirt_build.errors import BuildError

ROOT = Path("/")


def test_python_needs_libc_and_the_loader():
    files, _links = elfdeps.closure(ROOT, ["/usr/bin/python3.11"])
    names = {Path(f).name for f in files}
    assert "libc.so.6" in names
    assert "ld-linux-x86-64.so.2" in names
    assert "libm.so.6" in names


def test_extension_modules_bring_their_own_libraries():
    ext = next(Path("/usr/lib/python3.11/lib-dynload").glob("_ctypes.cpython-311-*.so"))
    files, _ = elfdeps.closure(ROOT, [str(ext)])
    assert any(Path(f).name.startswith("libffi.so") for f in files)


def test_interpreter_path_is_followed_through_symlinks():
    info = elfdeps.read_elf(Path("/usr/bin/python3.11"))
    assert info.interpreter == "/lib64/ld-linux-x86-64.so.2"
    resolved = elfdeps.resolve(ROOT, info.interpreter)
    assert Path(resolved.real).resolve() == Path(info.interpreter).resolve()
    assert (ROOT / resolved.real.lstrip("/")).is_file()


def test_resolve_keeps_absolute_links_inside_the_tree(tmp_path):
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/real").write_text("x")
    (tmp_path / "lib").symlink_to("usr/lib")
    (tmp_path / "usr/lib/abs").symlink_to("/lib/real")  # absolute: must stay inside tmp_path
    resolved = elfdeps.resolve(tmp_path, "/lib/abs")
    assert resolved.real == "/usr/lib/real"
    assert resolved.links == {"/lib": "usr/lib", "/usr/lib/abs": "/lib/real"}


def test_missing_library_is_named(tmp_path):
    (tmp_path / "usr/bin").mkdir(parents=True)
    python = Path("/usr/bin/python3.11").read_bytes()
    (tmp_path / "usr/bin/python3.11").write_bytes(python)  # no libraries in this tree
    with pytest.raises(BuildError, match=r"needs libm\.so\.6|needs libc\.so\.6|needs libz"):
        elfdeps.closure(tmp_path, ["/usr/bin/python3.11"])


def test_non_elf_is_a_clear_error(tmp_path):
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with pytest.raises(BuildError, match="not a readable ELF"):
        elfdeps.read_elf(tmp_path / "script")


def test_extra_files_bring_their_libraries_and_other_files_come_as_they_are(tmp_path):
    """ExtraFiles= of the initramfs: a program found through a symlink comes with its loader
    and libraries; a non-ELF file is copied alone; a missing library is named."""
    tree = tmp_path / "tree"
    for folder in ("usr/bin", "usr/lib/x86_64-linux-gnu", "etc"):
        (tree / folder).mkdir(parents=True)
    (tree / "bin").symlink_to("usr/bin")
    (tree / "lib64").symlink_to("usr/lib/x86_64-linux-gnu")
    (tree / "usr/bin/python3.11").write_bytes(Path("/usr/bin/python3.11").read_bytes())
    (tree / "etc/config").write_text("x = 1\n")
    with pytest.raises(BuildError, match=r"needs lib|ld-linux-x86-64\.so\.2 is not a file"):
        elfdeps.with_closure(tree, ["/bin/python3.11"])
    info = elfdeps.read_elf(Path("/usr/bin/python3.11"))
    for name in [*info.needed, "ld-linux-x86-64.so.2"]:
        host = Path("/usr/lib/x86_64-linux-gnu") / name
        (tree / "usr/lib/x86_64-linux-gnu" / name).write_bytes(host.read_bytes())
    files, links = elfdeps.with_closure(tree, ["/bin/python3.11", "/etc/config"])
    names = {Path(f).name for f in files}
    assert {"python3.11", "libc.so.6", "ld-linux-x86-64.so.2", "config"} <= names
    assert "/usr/bin/python3.11" in files and "/etc/config" in files
    assert links["/bin"] == "usr/bin"
    assert elfdeps.is_elf(tree, "/bin/python3.11")
    assert not elfdeps.is_elf(tree, "/etc/config")
    assert not elfdeps.is_elf(tree, "/etc/missing")
