"""Writing the UKI: signed kernel inside a signed image, or unsigned when no key is set."""

from __future__ import annotations

from pathlib import Path

import pefile
import pytest

from mvirt_build import uki
from mvirt_build.errors import BuildError
from mvirt_build.keys import generate_keys
from mvirt_build.sign import is_signed, verify_pe, write_uki

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
# Any PE image stands in for the kernel here: what matters is that sbsign can sign it.
KERNEL_PE = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")


def assemble(kernel: bytes) -> bytes:
    contents = {".osrel": b"ID=mvirt\n", ".cmdline": b"quiet\n", ".uname": b"6.1.0",
                ".initrd": b"\x28\xb5\x2f\xfd" + bytes(64), ".linux": kernel}  # fmt: skip
    return uki.assemble(STUB.read_bytes(), contents, b"mvirt,1,mvirt,mvirt-uos,0.1.0,-\n")


def section(path: Path, name: str) -> bytes:
    pe = pefile.PE(str(path), fast_load=True)
    try:
        s = next(s for s in pe.sections if s.Name.rstrip(b"\0").decode() == name)
        return s.get_data()[: s.Misc_VirtualSize]
    finally:
        pe.close()


def test_with_a_key_the_kernel_and_the_uki_are_signed(tmp_path):
    keys = generate_keys(tmp_path / "keys")
    out, unsigned = tmp_path / "mvirt-uos.efi", tmp_path / "mvirt-uos.unsigned.efi"
    assert write_uki(assemble, KERNEL_PE, out, unsigned, keys.key, keys.cert) is True
    verify_pe(out, keys.cert)
    kernel = tmp_path / "linux.efi"
    kernel.write_bytes(section(out, ".linux"))
    assert is_signed(kernel)
    verify_pe(kernel, keys.cert)
    assert not is_signed(unsigned)
    assert section(unsigned, ".linux") == KERNEL_PE.read_bytes()
    assert unsigned.read_bytes() == assemble(KERNEL_PE.read_bytes())


def test_without_a_key_both_files_are_the_same_unsigned_image(tmp_path):
    out, unsigned = tmp_path / "mvirt-uos.efi", tmp_path / "mvirt-uos.unsigned.efi"
    assert write_uki(assemble, KERNEL_PE, out, unsigned, None, None) is False
    assert out.read_bytes() == unsigned.read_bytes()
    assert not is_signed(out)


def test_a_signing_failure_stops_and_leaves_no_signed_image(tmp_path):
    keys = generate_keys(tmp_path / "keys")
    out, unsigned = tmp_path / "mvirt-uos.efi", tmp_path / "mvirt-uos.unsigned.efi"
    with pytest.raises(BuildError):
        write_uki(assemble, KERNEL_PE, out, unsigned, keys.cert, keys.cert)  # not a key
    assert not out.exists()
