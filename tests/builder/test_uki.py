"""UKI assembly on systemd's real EFI stub, checked by parsing the result with pefile."""

import struct
from itertools import pairwise
from pathlib import Path

import pefile
import pytest

from mvirt_build import uki

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
CONTENTS = {
    ".osrel": b'NAME="test"\n',
    ".cmdline": b"console=ttyS0\n",
    ".uname": b"6.1.0-test",
    ".initrd": bytes(range(256)) * 300,
    ".linux": b"\x4d\x5a" + b"k" * 70001,
}


@pytest.fixture(scope="module")
def image() -> bytes:
    return uki.assemble(STUB.read_bytes(), CONTENTS, b"mvirt,1,mvirt,mvirt-uos,0.1,-\n")


def sections(data: bytes) -> dict[str, pefile.SectionStructure]:
    pe = pefile.PE(data=data)
    return {s.Name.rstrip(b"\0").decode(): s for s in pe.sections}


def test_every_section_holds_its_content(image):
    found = sections(image)
    for name, content in CONTENTS.items():
        assert found[name].get_data()[: len(content)] == content
        assert found[name].Misc_VirtualSize == len(content)


def test_sections_are_aligned_and_do_not_overlap(image):
    pe = pefile.PE(data=image)
    oh = pe.OPTIONAL_HEADER
    ordered = sorted(pe.sections, key=lambda s: s.VirtualAddress)
    for s in ordered:
        assert s.VirtualAddress % oh.SectionAlignment == 0
        assert s.PointerToRawData % oh.FileAlignment == 0
    for a, b in pairwise(ordered):
        assert a.VirtualAddress + a.Misc_VirtualSize <= b.VirtualAddress
        assert a.PointerToRawData + a.SizeOfRawData <= b.PointerToRawData
    last = ordered[-1]
    end = last.VirtualAddress + last.Misc_VirtualSize
    assert (
        oh.SizeOfImage
        == (end + oh.SectionAlignment - 1) // oh.SectionAlignment * oh.SectionAlignment
    )


def test_checksum_and_stub_code_are_intact(image):
    pe = pefile.PE(data=image)
    assert pe.OPTIONAL_HEADER.CheckSum == pe.generate_checksum()
    stub = pefile.PE(data=STUB.read_bytes())
    assert sections(image)[".text"].get_data() == stub.sections[0].get_data()
    assert pe.OPTIONAL_HEADER.AddressOfEntryPoint == stub.OPTIONAL_HEADER.AddressOfEntryPoint


def test_sbat_keeps_the_stub_lines_and_adds_ours(image):
    sbat = sections(image)[".sbat"].get_data().rstrip(b"\0").decode()
    assert sbat.startswith("sbat,1,")
    assert "systemd," in sbat
    assert sbat.endswith("mvirt,1,mvirt,mvirt-uos,0.1,-\n")


def test_inspect_accepts_the_assembled_image(image):
    layout = uki.inspect(image)
    assert layout.problems == []
    assert layout.text(".cmdline") == "console=ttyS0\n"
    assert layout.text(".uname") == "6.1.0-test"
    assert not layout.signed


def test_inspect_reports_overlap_and_wrong_size(image):
    pe = pefile.PE(data=image)
    broken = bytearray(image)
    by_name = {s.Name.rstrip(b"\0"): s for s in pe.sections}
    # move .uname onto .cmdline's address, and lie about SizeOfImage
    va_offset = by_name[b".uname"].get_file_offset() + 12
    struct.pack_into("<I", broken, va_offset, by_name[b".cmdline"].VirtualAddress)
    size_offset = pe.OPTIONAL_HEADER.get_field_absolute_offset("SizeOfImage")
    struct.pack_into("<I", broken, size_offset, 0x1000)
    problems = uki.inspect(bytes(broken)).problems
    assert any("overlap in memory" in p for p in problems)
    assert any("SizeOfImage" in p for p in problems)


def test_missing_section_is_refused():
    with pytest.raises(uki.BuildError, match=r"\.initrd"):
        uki.assemble(STUB.read_bytes(), {k: v for k, v in CONTENTS.items() if k != ".initrd"}, b"")
