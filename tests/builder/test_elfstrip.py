"""Compiled extensions lose their debug data on the way into the image and still load."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mvirt_build.elfstrip import has_debug_data, stripped

SOURCE = """
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "demo_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_demo_ext(void) { return PyModule_Create(&module); }
"""


@pytest.fixture
def extension(tmp_path: Path) -> Path:
    """A Python extension module built with debug information, as wheels often ship them."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is missing: scripts/bootstrap.sh installs build-essential")
    include = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    src = tmp_path / "demo_ext.c"
    src.write_text(SOURCE)
    out = tmp_path / "demo_ext.so"
    subprocess.run(
        ["gcc", "-g", "-O1", "-shared", "-fPIC", f"-I{include}", "-o", out, src], check=True
    )
    return out


def _load(path: Path):
    spec = importlib.util.spec_from_file_location("demo_ext", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_debug_data_is_removed_and_the_extension_still_imports(extension: Path, tmp_path: Path):
    data = extension.read_bytes()
    assert has_debug_data(data)
    small = stripped(data)
    assert not has_debug_data(small)
    assert len(small) < len(data)
    out = tmp_path / "stripped" / "demo_ext.so"
    out.parent.mkdir()
    out.write_bytes(small)
    assert _load(out).answer() == 42


def test_stripping_is_deterministic(extension: Path):
    data = extension.read_bytes()
    assert stripped(data) == stripped(data)


def test_files_without_debug_data_are_left_alone(extension: Path):
    once = stripped(extension.read_bytes())
    assert stripped(once) == once
    assert stripped(b"#!/bin/sh\necho not elf\n") == b"#!/bin/sh\necho not elf\n"
    assert stripped(b"\x7fELF but truncated") == b"\x7fELF but truncated"
