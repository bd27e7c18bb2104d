"""`inspect` shows what is in a UKI and who signed it; `verify` checks its sections against the
inputs the manifest names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from mvirt_build import uki
from mvirt_build.cli import main
from mvirt_build.keys import generate_keys
from mvirt_build.manifest import Input, build_manifest, verify_artifact, write_manifest
from mvirt_build.sign import write_uki

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
KERNEL_PE = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")  # stands in for the kernel
INITRD = b"\x28\xb5\x2f\xfd" + bytes(64)


def assembler(initrd: bytes):
    def assemble(kernel: bytes) -> bytes:
        contents = {".osrel": b"ID=mvirt\nIMAGE_ID=mvirt-uos\n", ".cmdline": b"quiet\n",
                    ".uname": b"6.1.0", ".initrd": initrd, ".linux": kernel}  # fmt: skip
        return uki.assemble(STUB.read_bytes(), contents, b"mvirt,1,mvirt,mvirt-uos,0.1.0,-\n")

    return assemble


def signed_uki(tmp_path: Path, initrd: bytes):
    keys = generate_keys(tmp_path / "keys")
    out, unsigned = tmp_path / "mvirt-uos.efi", tmp_path / "mvirt-uos.unsigned.efi"
    write_uki(assembler(initrd), KERNEL_PE, out, unsigned, keys.key, keys.cert)
    initramfs = tmp_path / "initramfs.cpio.zst"
    initramfs.write_bytes(INITRD)
    inputs = [Input("initramfs", initramfs), Input("cmdline", value="quiet"),
              Input("bzImage", KERNEL_PE)]  # fmt: skip
    write_manifest(out, build_manifest(out, "uki", inputs=inputs, signing_cert=keys.cert,
                                       unsigned=unsigned))  # fmt: skip
    return out, keys


def test_inspect_json_lists_sections_texts_and_signer(tmp_path: Path) -> None:
    out, _keys = signed_uki(tmp_path, INITRD)
    result = CliRunner().invoke(main, ["inspect", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    sections = {s["name"]: s for s in report["sections"]}
    assert sections[".initrd"]["size"] == len(INITRD)
    assert sections[".initrd"]["sha256"] == hashlib.sha256(INITRD).hexdigest()
    assert report["text"][".cmdline"].strip() == "quiet"
    assert "IMAGE_ID=mvirt-uos" in report["text"][".osrel"]
    assert "mvirt-uos" in report["text"][".sbat"]
    (signer,) = report["signers"]
    assert signer["subject"] == "CN=mvirt Secure Boot"
    assert signer["not_before"] < signer["not_after"]
    text = CliRunner().invoke(main, ["inspect", str(out)])
    assert "signed by: CN=mvirt Secure Boot" in text.output
    assert f"{'.initrd':<10} {len(INITRD):>12}  {hashlib.sha256(INITRD).hexdigest()}" in text.output


def test_verify_checks_sections_against_the_manifest_inputs(tmp_path: Path) -> None:
    out, keys = signed_uki(tmp_path, INITRD)
    assert verify_artifact(out, cert=keys.cert) == []
    # A UKI whose .initrd is not the initramfs its manifest names (manifest rewritten to match
    # the file's hashes) is caught by the input check.
    other, _ = signed_uki(tmp_path / "other", b"\x28\xb5\x2f\xfd" + b"evil" * 16)
    manifest = json.loads((tmp_path / "other/mvirt-uos.efi.manifest.json").read_text())
    manifest["inputs"] = json.loads((tmp_path / "mvirt-uos.efi.manifest.json").read_text())[
        "inputs"
    ]
    write_manifest(other, manifest)
    problems = verify_artifact(other, cert=keys.cert)
    assert "mvirt-uos.efi: .initrd is not the initramfs the manifest names" in problems
