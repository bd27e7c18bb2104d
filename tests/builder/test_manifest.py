"""Manifests beside artifacts and `verify` naming exactly what changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pefile
import pytest

from mvirt_build import uki
from mvirt_build.errors import BuildError
from mvirt_build.iso import build_iso
from mvirt_build.keys import generate_keys
from mvirt_build.manifest import (
    Input,
    build_manifest,
    load_manifest,
    manifest_path,
    missing_downloads,
    verify_artifact,
    write_manifest,
)
from mvirt_build.sign import sign_pe

EFI_APP = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")


@pytest.fixture
def keys(tmp_path):
    return generate_keys(tmp_path / "keys")


@pytest.fixture
def signed(tmp_path, keys) -> Path:
    out = tmp_path / "out/app.efi"
    out.parent.mkdir()
    sign_pe(EFI_APP, out, keys.key, keys.cert)
    write_manifest(
        out,
        build_manifest(
            out, "uki", inputs=[Input("app", EFI_APP), Input("cmdline", value="quiet")],
            tools=["sbsign"], source_date_epoch=1, signing_cert=keys.cert, unsigned=EFI_APP,
        ),
    )  # fmt: skip
    return out


def section_offset(path: Path, name: str) -> int:
    pe = pefile.PE(str(path), fast_load=True)
    try:
        s = next(s for s in pe.sections if s.Name.rstrip(b"\0").decode() == name)
        return s.PointerToRawData + 16
    finally:
        pe.close()


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_manifest_records_inputs_tools_and_sections(signed, keys):
    m = load_manifest(signed)
    assert manifest_path(signed).name == "app.efi.manifest.json"
    assert m["inputs"][0]["name"] == "app"
    assert len(m["inputs"][0]["sha256"]) == 64
    assert m["inputs"][1] == {"name": "cmdline", "value": "quiet"}
    assert m["tools"]["sbsign"].startswith("sbsign")
    record = m["artifact"]
    assert record["pe"]["signed"] is True
    assert {s["name"] for s in record["pe"]["sections"]} >= {".text", ".data"}
    assert record["certificate"]["path"] == str(keys.cert)
    assert record["unsigned_sha256"] != record["sha256"]


def test_untouched_artifact_verifies(signed, keys):
    assert verify_artifact(signed, cert=keys.cert) == []


def test_changed_section_is_named(signed, keys):
    flip(signed, section_offset(signed, ".data"))
    problems = verify_artifact(signed, cert=keys.cert)
    assert any("section .data differs" in p for p in problems)
    assert any("SHA-256" in p for p in problems)
    assert any("does not verify" in p for p in problems)
    assert not any(".text" in p for p in problems)


def test_stripped_signature_is_reported(signed, keys):
    shutil.copyfile(EFI_APP, signed)
    problems = verify_artifact(signed, cert=keys.cert)
    assert any("signed=False" in p for p in problems)


def test_certificate_named_in_the_manifest_is_not_trusted(signed, keys, tmp_path):
    """Someone who re-signs the artifact with their own key and names their certificate in
    the manifest does not pass: only the configured certificate counts."""
    mallory = generate_keys(tmp_path / "mallory")
    sign_pe(EFI_APP, signed, mallory.key, mallory.cert)
    write_manifest(
        signed,
        build_manifest(signed, "uki", source_date_epoch=1, signing_cert=mallory.cert,
                       unsigned=EFI_APP),
    )  # fmt: skip
    assert any("does not verify" in p for p in verify_artifact(signed, cert=keys.cert))
    unconfigured = verify_artifact(signed, cert=None)
    assert any("no certificate is configured" in p for p in unconfigured)


def test_missing_downloads_make_the_artifact_incomplete(signed, keys):
    manifest = load_manifest(signed)
    assert missing_downloads(manifest) == []
    manifest["fetched"] = [
        {"name": "hypervisor-fw", "sha256": "ab" * 32, "install": "/usr/share/mvirt/fw",
         "source": "cache"},
        {"name": "cloud-hypervisor", "install": "/usr/bin/cloud-hypervisor", "missing": True},
    ]  # fmt: skip
    write_manifest(signed, manifest)
    assert missing_downloads(load_manifest(signed)) == [
        "cloud-hypervisor (/usr/bin/cloud-hypervisor)"
    ]


def test_wrong_certificate_is_reported(signed, tmp_path):
    other = generate_keys(tmp_path / "other")
    problems = verify_artifact(signed, cert=other.cert)
    assert any("does not verify" in p for p in problems)


def test_missing_manifest_is_a_clear_error(tmp_path):
    lone = tmp_path / "lone.efi"
    shutil.copyfile(EFI_APP, lone)
    with pytest.raises(BuildError, match=r"manifest\.json not found"):
        verify_artifact(lone, cert=None)


def test_iso_manifest_checks_the_uki_inside(tmp_path, signed, keys):
    iso = build_iso(signed, tmp_path / "out/app.iso", epoch=0).path
    write_manifest(iso, build_manifest(iso, "iso", payload=signed, signing_cert=keys.cert))
    assert verify_artifact(iso, cert=keys.cert) == []
    # Corrupt the boot file inside the ESP: the ISO hash and the PE section are named.
    data = iso.read_bytes()
    needle = signed.read_bytes()[
        section_offset(signed, ".data") : section_offset(signed, ".data") + 64
    ]
    at = data.index(needle)
    flip(iso, at)
    problems = verify_artifact(iso, cert=keys.cert)
    assert any("app.iso: SHA-256" in p for p in problems)
    assert any("BOOTX64.EFI: section .data differs" in p for p in problems)


def test_verify_uses_the_uki_layout_checker_for_plain_efi_programs(tmp_path):
    """A plain EFI program (no UKI sections, no checksum) is a well-formed PE; the same checker
    asked about a UKI names what is missing."""
    assert uki.inspect(EFI_APP.read_bytes(), uki=False).problems == []
    problems = uki.inspect(EFI_APP.read_bytes()).problems
    assert "section .linux (kernel image) is missing" in problems
