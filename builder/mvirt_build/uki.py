"""Unified Kernel Images (UAPI UKI specification): a PE built on systemd's EFI stub with the
kernel, initrd, command line and identity in named sections.

One table (SECTIONS) drives both assembly and inspection, so the two cannot disagree.
"""

import struct
from dataclasses import dataclass
from itertools import pairwise

import pefile

from mvirt_build.errors import BuildError


@dataclass(frozen=True)
class SectionSpec:
    """A UKI section: its name, what it holds, whether it is text, whether it must exist."""

    name: str
    description: str
    text: bool
    required: bool = True


# In the order they are appended to the stub. `.sbat` lives in the stub and is extended there.
SECTIONS = (
    SectionSpec(".osrel", "os-release of the image", text=True),
    SectionSpec(".cmdline", "kernel command line", text=True),
    SectionSpec(".uname", "kernel release (uname -r)", text=True),
    SectionSpec(".sbat", "SBAT revocation metadata", text=True),
    SectionSpec(".initrd", "initramfs", text=False),
    SectionSpec(".linux", "kernel image", text=False),
)
APPENDED = tuple(s.name for s in SECTIONS if s.name != ".sbat")
DATA_SECTION = 0x40000040  # IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
SECTION_HEADER = struct.Struct("<8sIIIIIIHHI")


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class Section:
    """A section as laid out in a PE file."""

    name: str
    virtual_address: int
    virtual_size: int
    raw_offset: int
    raw_size: int
    data: bytes


def assemble(stub: bytes, contents: dict[str, bytes], sbat: bytes) -> bytes:
    """The UKI: the stub with `sbat` added to its `.sbat` and the APPENDED sections added."""
    missing = [name for name in APPENDED if name not in contents]
    if missing:
        raise BuildError(f"UKI sections missing: {', '.join(missing)}")
    pe = pefile.PE(data=stub, fast_load=True)
    if pe.OPTIONAL_HEADER.DATA_DIRECTORY[4].Size:  # IMAGE_DIRECTORY_ENTRY_SECURITY
        raise BuildError("the EFI stub is signed; give an unsigned stub")
    file_align = pe.OPTIONAL_HEADER.FileAlignment
    sect_align = pe.OPTIONAL_HEADER.SectionAlignment
    out = bytearray(stub.ljust(_align(len(stub), file_align), b"\0"))

    _extend_sbat(pe, out, sbat)

    table = pe.sections[-1].get_file_offset() + SECTION_HEADER.size
    count = pe.FILE_HEADER.NumberOfSections
    next_va = _align(max(s.VirtualAddress + s.Misc_VirtualSize for s in pe.sections), sect_align)
    for name in APPENDED:
        data = contents[name]
        if table + SECTION_HEADER.size > pe.OPTIONAL_HEADER.SizeOfHeaders:
            raise BuildError("no room for another section header in the stub's headers")
        raw_offset = len(out)
        raw_size = _align(len(data), file_align)
        out.extend(data.ljust(raw_size, b"\0"))
        header = SECTION_HEADER.pack(
            name.encode(), len(data), next_va, raw_size, raw_offset, 0, 0, 0, 0, DATA_SECTION
        )
        out[table : table + SECTION_HEADER.size] = header
        table += SECTION_HEADER.size
        count += 1
        next_va = _align(next_va + len(data), sect_align)

    struct.pack_into("<H", out, pe.FILE_HEADER.get_field_absolute_offset("NumberOfSections"), count)
    oh = pe.OPTIONAL_HEADER
    struct.pack_into("<I", out, oh.get_field_absolute_offset("SizeOfImage"), next_va)
    initialized = oh.SizeOfInitializedData + sum(
        _align(len(contents[n]), file_align) for n in APPENDED
    )
    struct.pack_into("<I", out, oh.get_field_absolute_offset("SizeOfInitializedData"), initialized)
    return set_checksum(bytes(out))


def _extend_sbat(pe: pefile.PE, out: bytearray, sbat: bytes) -> None:
    """Append our SBAT lines to the stub's `.sbat` section, in place (it has slack)."""
    for s in pe.sections:
        if s.Name.rstrip(b"\0") == b".sbat":
            current = s.get_data().rstrip(b"\0")
            merged = current + (b"" if current.endswith(b"\n") else b"\n") + sbat
            if len(merged) > s.SizeOfRawData:
                raise BuildError(".sbat of the stub has no room for the image's SBAT line")
            out[s.PointerToRawData : s.PointerToRawData + s.SizeOfRawData] = merged.ljust(
                s.SizeOfRawData, b"\0"
            )
            offset = s.get_file_offset() + 8  # VirtualSize follows the 8-byte name
            struct.pack_into("<I", out, offset, len(merged))
            return
    raise BuildError("the EFI stub has no .sbat section")


def set_checksum(data: bytes) -> bytes:
    """The PE with its optional header CheckSum field recomputed."""
    pe = pefile.PE(data=data, fast_load=True)
    out = bytearray(data)
    offset = pe.OPTIONAL_HEADER.get_field_absolute_offset("CheckSum")
    struct.pack_into("<I", out, offset, pe.generate_checksum())  # the sum skips this field
    return bytes(out)


@dataclass(frozen=True)
class Layout:
    """A parsed UKI and the problems found in it (empty when it is well-formed)."""

    sections: list[Section]
    size_of_image: int
    checksum_ok: bool
    signed: bool
    problems: list[str]

    def section(self, name: str) -> Section | None:
        """The section called `name`, if present."""
        return next((s for s in self.sections if s.name == name), None)

    def text(self, name: str) -> str:
        """A text section's content, without trailing NULs."""
        s = self.section(name)
        return s.data.rstrip(b"\0").decode(errors="replace") if s else ""


def inspect(data: bytes, uki: bool = True) -> Layout:
    """Parse a PE and check its layout: sections aligned, inside the file, not overlapping,
    SizeOfImage and checksum right; with `uki`, also the UKI's sections present. The one PE
    layout checker of the builder (assembly, `inspect` and `verify` use it)."""
    try:
        pe = pefile.PE(data=data, fast_load=True)
    except pefile.PEFormatError as exc:
        raise BuildError(f"not a PE file: {exc}") from exc
    oh = pe.OPTIONAL_HEADER
    sections = [
        Section(
            s.Name.rstrip(b"\0").decode(errors="replace"),
            s.VirtualAddress,
            s.Misc_VirtualSize,
            s.PointerToRawData,
            s.SizeOfRawData,
            s.get_data()[: s.Misc_VirtualSize],
        )
        for s in pe.sections
    ]
    problems: list[str] = []
    names = [s.name for s in sections]
    for spec in SECTIONS if uki else ():
        if spec.required and spec.name not in names:
            problems.append(f"section {spec.name} ({spec.description}) is missing")
    for s in sections:
        if s.virtual_address % oh.SectionAlignment:
            problems.append(f"{s.name}: virtual address {s.virtual_address:#x} is not aligned")
        if s.raw_offset % oh.FileAlignment or s.raw_size % oh.FileAlignment:
            problems.append(f"{s.name}: file offset/size not aligned to {oh.FileAlignment}")
        if s.raw_offset + s.raw_size > len(data):
            problems.append(f"{s.name}: extends past the end of the file")
    ordered = sorted(sections, key=lambda s: s.virtual_address)
    for a, b in pairwise(ordered):
        if (
            a.virtual_address + _align(max(a.virtual_size, 1), oh.SectionAlignment)
            > b.virtual_address
        ):
            problems.append(f"{a.name} and {b.name} overlap in memory")
    by_file = sorted((s for s in sections if s.raw_size), key=lambda s: s.raw_offset)
    for a, b in pairwise(by_file):
        if a.raw_offset + a.raw_size > b.raw_offset:
            problems.append(f"{a.name} and {b.name} overlap in the file")
    last = ordered[-1] if ordered else None
    expected = _align(last.virtual_address + last.virtual_size, oh.SectionAlignment) if last else 0
    if oh.SizeOfImage != expected:
        problems.append(f"SizeOfImage is {oh.SizeOfImage:#x}, expected {expected:#x}")
    signed = bool(oh.DATA_DIRECTORY[4].Size)
    checksum_ok = oh.CheckSum == pe.generate_checksum()
    # 0 means "no checksum" in a PE; the builder's own UKIs always carry one.
    if not checksum_ok and not signed and (uki or oh.CheckSum != 0):
        problems.append(
            f"checksum {oh.CheckSum:#x} is wrong (expected {pe.generate_checksum():#x})"
        )
    return Layout(sections, oh.SizeOfImage, checksum_ok, signed, problems)
