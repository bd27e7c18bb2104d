"""ELF files bound for the image without their symbol tables and debug sections.

Python wheels ship compiled extensions unstripped (zstandard's C backend: 11.6 MiB, 0.96 MiB
stripped; cryptography's Rust core: 14.4 MiB, 11.6 MiB stripped); Debian's binaries and
libraries are stripped already and are left as they are. `strip --strip-unneeded` keeps the
dynamic symbol table, which is all the loader and Python's import need.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from mvirt_build.run import run

TOOL = "strip"


def has_debug_data(data: bytes) -> bool:
    """True if `data` is an ELF file carrying a symbol table or debug sections."""
    if not data.startswith(b"\x7fELF"):
        return False
    try:
        elf = ELFFile(io.BytesIO(data))
        return any(
            s.name == ".symtab" or s.name.startswith((".debug", ".zdebug"))
            for s in elf.iter_sections()
        )
    except ELFError:
        return False


def stripped(data: bytes) -> bytes:
    """`data` without what `has_debug_data` finds (unchanged when it has none)."""
    if not has_debug_data(data):
        return data
    with tempfile.TemporaryDirectory(prefix="mvirt-strip-") as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        src.write_bytes(data)
        run(
            [TOOL, "--strip-unneeded", "--enable-deterministic-archives", "-o", out, src],
            hint="apt-get install binutils",
        )
        return out.read_bytes()
