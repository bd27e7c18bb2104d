"""The JSON manifest beside each artifact, and `verify`: recheck an artifact against it.

A manifest records what went in (every input with its SHA-256, the package list of the
rootfs, fetched files, tool versions, SOURCE_DATE_EPOCH) and what came out: the artifact's
hash and size and, for PE images, one hash per section, so a mismatch can be named down to
the section. For an ISO the manifest also carries the PE record of the UKI it boots.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pefile

from mvirt_build import uki
from mvirt_build.errors import BuildError
from mvirt_build.hashing import atomic_write, sha256_and_size
from mvirt_build.iso import el_torito_entries, extract_boot_file, find_esp
from mvirt_build.run import output
from mvirt_build.sign import verify_pe

FORMAT = "mvirt-manifest/1"
SUFFIX = ".manifest.json"

# How to ask each tool for its version: the first line of its answer is recorded.
TOOL_VERSION_ARGS: dict[str, list[str]] = {
    "sbsign": ["--version"],
    "xorriso": ["-version"],
    "mcopy": ["--version"],
    "mkfs.fat": ["--help"],
    "qemu-system-x86_64": ["--version"],
    "mkosi": ["--version"],
    "gcc": ["--version"],
    "zstd": ["--version"],
}


@dataclass(frozen=True)
class Input:
    """One input of a build: a file (hashed here) or a value recorded as given."""

    name: str
    path: Path | None = None
    value: str | None = None

    def record(self) -> dict[str, Any]:
        """The manifest entry for this input."""
        out: dict[str, Any] = {"name": self.name}
        if self.path is not None:
            sha256, size = sha256_and_size(self.path)
            out.update(path=str(self.path), sha256=sha256, size=size)
        if self.value is not None:
            out["value"] = self.value
        return out


def manifest_path(artifact: Path) -> Path:
    """Where the manifest of `artifact` lives: beside it, `<name>.manifest.json`."""
    return artifact.with_name(artifact.name + SUFFIX)


def tool_versions(tools: Iterable[str]) -> dict[str, str]:
    """First line of each tool's version output ("missing" when it is not installed)."""
    versions: dict[str, str] = {}
    for tool in tools:
        args = TOOL_VERSION_ARGS.get(tool, ["--version"])
        try:
            text = output([tool, *args]).splitlines()
        except BuildError:
            versions[tool] = "missing"
            continue
        versions[tool] = text[0].strip() if text else "unknown"
    return versions


def pe_record(path: Path) -> dict[str, Any]:
    """Hash and layout of a PE image: whole file, each section, signature presence."""
    sha256, size = sha256_and_size(path)
    try:
        pe = pefile.PE(str(path), fast_load=True)
    except pefile.PEFormatError as exc:
        raise BuildError(f"{path}: not a PE image ({exc})") from None
    try:
        sections = []
        for s in pe.sections:
            data = s.get_data()
            sections.append(
                {
                    "name": s.Name.rstrip(b"\0").decode(errors="replace"),
                    "virtual_address": s.VirtualAddress,
                    "virtual_size": s.Misc_VirtualSize,
                    "file_offset": s.PointerToRawData,
                    "file_size": s.SizeOfRawData,
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
        security = pe.OPTIONAL_HEADER.DATA_DIRECTORY[
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_SECURITY"]
        ]
        return {
            "sha256": sha256,
            "size": size,
            "signed": bool(security.Size),
            "section_alignment": pe.OPTIONAL_HEADER.SectionAlignment,
            "file_alignment": pe.OPTIONAL_HEADER.FileAlignment,
            "size_of_image": pe.OPTIONAL_HEADER.SizeOfImage,
            "sections": sections,
        }
    finally:
        pe.close()


def build_manifest(
    artifact: Path,
    kind: str,
    *,
    inputs: Iterable[Input] = (),
    packages: list[dict[str, str]] | None = None,
    tools: Iterable[str] = (),
    fetched: Iterable[Mapping[str, Any]] = (),
    source_date_epoch: int | None = None,
    signing_cert: Path | None = None,
    unsigned: Path | None = None,
    payload: Path | None = None,
) -> dict[str, Any]:
    """The manifest of `artifact` (kind "uki", "iso", "initramfs", ...) as a JSON-ready dict."""
    sha256, size = sha256_and_size(artifact)
    record: dict[str, Any] = {"name": artifact.name, "kind": kind, "sha256": sha256, "size": size}
    if kind == "uki":
        record["pe"] = pe_record(artifact)
    if payload is not None:
        record["payload"] = pe_record(payload)
    if unsigned is not None:
        record["unsigned_sha256"] = sha256_and_size(unsigned)[0]
    if signing_cert is not None:
        record["certificate"] = {
            "path": str(signing_cert),
            "sha256": sha256_and_size(signing_cert)[0],
        }
    return {
        "format": FORMAT,
        "artifact": record,
        "source_date_epoch": source_date_epoch,
        "inputs": [i.record() for i in inputs],
        "fetched": list(fetched),
        "packages": packages or [],
        "tools": tool_versions(tools),
    }


def write_manifest(artifact: Path, manifest: Mapping[str, Any]) -> Path:
    """Write the manifest beside `artifact` (atomically) and return its path."""
    path = manifest_path(artifact)
    atomic_write(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def load_manifest(artifact: Path) -> dict[str, Any]:
    """The manifest beside `artifact`, checked for its format."""
    path = manifest_path(artifact)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BuildError(f"{path} not found", hint="rebuild the artifact to write it") from None
    except json.JSONDecodeError as exc:
        raise BuildError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BuildError(f"{path}: not an mvirt manifest (format {FORMAT})")
    return data


def compare_pe(expected: Mapping[str, Any], actual: Mapping[str, Any], what: str) -> list[str]:
    """Differences between two PE records, naming the sections whose bytes differ."""
    problems = []
    if expected["sha256"] != actual["sha256"]:
        problems.append(f"{what}: SHA-256 {actual['sha256']} != manifest {expected['sha256']}")
    want = {s["name"]: s for s in expected["sections"]}
    have = {s["name"]: s for s in actual["sections"]}
    for name in sorted(want.keys() | have.keys()):
        if name not in have:
            problems.append(f"{what}: section {name} is missing")
        elif name not in want:
            problems.append(f"{what}: section {name} is not in the manifest")
        elif want[name]["sha256"] != have[name]["sha256"]:
            problems.append(f"{what}: section {name} differs")
    return problems


def verify_artifact(artifact: Path, *, cert: Path | None) -> list[str]:
    """Recheck `artifact` against its manifest: layout, signature, hashes. Returns the list
    of problems (empty: all good). Signatures are checked against `cert`, the configured
    certificate, and never against one the manifest names: whoever can write the artifact can
    write its manifest too."""
    manifest = load_manifest(artifact)
    record = manifest["artifact"]
    problems: list[str] = []
    sha256, size = sha256_and_size(artifact)
    if size != record["size"]:
        problems.append(f"{artifact.name}: size {size} != manifest {record['size']}")
    if sha256 != record["sha256"]:
        problems.append(f"{artifact.name}: SHA-256 {sha256} != manifest {record['sha256']}")
    with tempfile.TemporaryDirectory(prefix="mvirt-verify-") as tmp:
        pe_file: Path | None = None
        expected_pe: Mapping[str, Any] | None = None
        if record["kind"] == "uki":
            pe_file, expected_pe = artifact, record["pe"]
        elif record["kind"] == "iso":
            try:
                problems.extend(_iso_layout_problems(artifact))
                pe_file = Path(tmp) / "BOOTX64.EFI"
                extract_boot_file(artifact, pe_file)
                expected_pe = record.get("payload")
            except BuildError as exc:
                problems.append(f"{artifact.name}: {exc}")
                pe_file = None
        if pe_file is not None and expected_pe is not None:
            what = pe_file.name if pe_file != artifact else artifact.name
            actual = pe_record(pe_file)
            was_uki = any(s["name"] == ".linux" for s in expected_pe["sections"])
            layout = uki.inspect(pe_file.read_bytes(), uki=was_uki)
            problems.extend(f"{what}: {p}" for p in layout.problems)
            problems.extend(compare_pe(expected_pe, actual, what))
            if actual["signed"] != expected_pe["signed"]:
                problems.append(
                    f"{what}: signed={actual['signed']}, manifest says {expected_pe['signed']}"
                )
            if was_uki:
                problems.extend(
                    f"{what}: {p}"
                    for p in input_problems(pe_file, manifest, cert if actual["signed"] else None)
                )
            if actual["signed"]:
                if cert is None:
                    problems.append(
                        f"{what}: signed, but no certificate is configured to check it with "
                        "(--cert, --secure-boot-certificate or mkosi.conf SecureBootCertificate=)"
                    )
                else:
                    try:
                        verify_pe(pe_file, cert)
                    except BuildError as exc:
                        problems.append(str(exc))
    return problems


def input_problems(pe_file: Path, manifest: Mapping[str, Any], cert: Path | None) -> list[str]:
    """The UKI's sections against the inputs its manifest names: `.initrd` is the initramfs,
    `.cmdline` the configured command line, and `.linux` the kernel (signed with `cert` when
    the UKI is signed, else byte for byte the bzImage)."""
    layout = uki.inspect(pe_file.read_bytes())
    inputs = {i["name"]: i for i in manifest.get("inputs", [])}
    problems = []

    def section_sha256(name: str) -> str | None:
        s = layout.section(name)
        return hashlib.sha256(s.data).hexdigest() if s else None

    initramfs = inputs.get("initramfs")
    if initramfs and section_sha256(".initrd") != initramfs.get("sha256"):
        problems.append(".initrd is not the initramfs the manifest names")
    cmdline = inputs.get("cmdline")
    if cmdline and layout.text(".cmdline").strip() != str(cmdline.get("value", "")).strip():
        problems.append(f".cmdline is not the configured command line {cmdline.get('value')!r}")
    kernel = inputs.get("bzImage")
    linux = layout.section(".linux")
    if kernel and linux is not None:
        if cert is not None:
            with tempfile.TemporaryDirectory(prefix="mvirt-verify-") as tmp:
                inner = Path(tmp) / "linux.efi"
                inner.write_bytes(linux.data)
                try:
                    verify_pe(inner, cert)
                except BuildError:
                    problems.append(".linux: the kernel inside is not signed by the certificate")
        elif section_sha256(".linux") != kernel.get("sha256"):
            problems.append(".linux is not the kernel the manifest names")
    return problems


def missing_downloads(manifest: Mapping[str, Any]) -> list[str]:
    """The pinned downloads the artifact was built without (`name (install path)`): such an
    artifact is incomplete, however well it verifies."""
    return [
        f"{item['name']} ({item.get('install') or 'build input'})"
        for item in manifest.get("fetched", [])
        if item.get("missing")
    ]


def _iso_layout_problems(iso: Path) -> list[str]:
    problems = []
    offset, _ = find_esp(iso)
    entries = el_torito_entries(iso)
    efi = [e for e in entries if e.platform == "UEFI" and e.emulation == "none"]
    if not efi:
        problems.append(f"{iso.name}: no El Torito no-emulation UEFI boot image")
    elif efi[0].lba * 2048 != offset:
        problems.append(f"{iso.name}: El Torito EFI image is not the GPT EFI system partition")
    return problems
