"""Checks that a fetched binary is what the image can run: x86-64 ELF, static when required."""

from __future__ import annotations

from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

from mvirt_build.errors import BuildError


def check_elf(path: Path, *, static: bool, what: str | None = None) -> None:
    """Fail unless `path` is a 64-bit x86-64 ELF; with `static`, also without PT_INTERP and
    without DT_NEEDED (the image carries no dynamic loader or libraries for it)."""
    label = what or str(path)
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
                raise BuildError(
                    f"{label}: not an x86-64 binary "
                    f"(ELF class {elf.elfclass}, machine {elf['e_machine']})"
                )
            if not static:
                return
            problems: list[str] = []
            for segment in elf.iter_segments():
                if isinstance(segment, InterpSegment):
                    problems.append(f"interpreter {segment.get_interp_name()}")
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags("DT_NEEDED"):
                        problems.append(f"needs {tag.needed}")  # type: ignore[attr-defined]
    except ELFError as exc:
        raise BuildError(f"{label}: not an ELF file ({exc})") from None
    if problems:
        raise BuildError(f"{label}: must be statically linked but has {', '.join(problems)}")
