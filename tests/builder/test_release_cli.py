"""The release commands as a user types them: exit codes, messages, no tracebacks."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mvirt_build.cli import main
from mvirt_build.lockfile import load_lock

EFI_APP = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
STATIC = Path("/bin/busybox")
LOCK = """
[[download]]
name = "cloud-hypervisor"
url = "http://127.0.0.1:9/cloud-hypervisor-static"
sha256 = "unknown"
size = "unknown"
install = "/usr/bin/cloud-hypervisor"
mode = "0755"
check = "elf-static"
note = ""
"""


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "downloads.lock").write_text(LOCK)
    (root / "mvirt-build.conf").write_text("")
    monkeypatch.chdir(root / "sub")  # commands find the checkout from a subfolder
    monkeypatch.setenv("MVIRT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MVIRT_ALLOW_MISSING_DOWNLOADS", raising=False)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    return root


def invoke(*args: str, input: str | None = None):
    result = CliRunner().invoke(main, list(args), input=input)
    assert "Traceback" not in result.output + result.stderr
    return result


def test_genkey_keeps_existing_keys_and_says_so(repo):
    first = invoke("genkey")
    assert first.exit_code == 0, first.output
    assert (repo / "keys/mvirt.key").is_file() and (repo / "keys/mvirt.der").is_file()
    names = ("mvirt.key", "mvirt.crt", "api-ca.key", "api-ca.crt", "client.key", "client.crt")
    before = {name: (repo / "keys" / name).read_bytes() for name in names}
    again = invoke("genkey")
    assert again.exit_code == 0, again.output
    assert again.output.count("kept: it exists") == 3
    assert {name: (repo / "keys" / name).read_bytes() for name in names} == before
    replaced = invoke("genkey", "--force")
    assert replaced.exit_code == 0 and "kept" not in replaced.output
    assert all((repo / "keys" / name).read_bytes() != before[name] for name in names)


def test_unpinned_download_fails_unless_missing_is_allowed(repo):
    strict = invoke("fetch")
    assert strict.exit_code == 1
    assert "mvirt-build lock cloud-hypervisor --file PATH" in strict.stderr
    lenient = invoke("fetch", "--allow-missing-downloads")
    assert lenient.exit_code == 0
    assert "WARNING: cloud-hypervisor is MISSING" in lenient.stderr


def test_missing_can_be_allowed_from_the_environment(repo, monkeypatch):
    monkeypatch.setenv("MVIRT_ALLOW_MISSING_DOWNLOADS", "1")
    result = invoke("fetch")
    assert result.exit_code == 0
    assert "MISSING" in result.stderr


def test_lock_pins_a_checked_local_file_then_fetch_works_offline(repo):
    declined = invoke("lock", "cloud-hypervisor", "--file", str(STATIC), input="n\n")
    assert declined.exit_code == 1
    assert load_lock(repo / "downloads.lock").get("cloud-hypervisor").sha256 is None

    pinned = invoke("lock", "cloud-hypervisor", "--file", str(STATIC), input="y\n")
    assert pinned.exit_code == 0, pinned.output
    entry = load_lock(repo / "downloads.lock").get("cloud-hypervisor")
    assert entry.sha256 == hashlib.sha256(STATIC.read_bytes()).hexdigest()
    assert entry.size == STATIC.stat().st_size

    offline = invoke("fetch", "--offline")
    assert offline.exit_code == 1 and "offline" in offline.stderr
    local = invoke("fetch", "--offline", "--download", f"cloud-hypervisor={STATIC}")
    assert local.exit_code == 0 and "(local)" in local.output
    cached = invoke("fetch", "--offline")
    assert cached.exit_code == 0 and "(cache)" in cached.output


def test_lock_refuses_a_file_that_fails_the_content_check(repo):
    result = invoke("lock", "cloud-hypervisor", "--file", "/bin/ls", "--yes")
    assert result.exit_code == 1
    assert "statically linked" in result.stderr


def test_bad_download_argument_is_explained(repo):
    result = invoke("fetch", "--download", "cloud-hypervisor")
    assert result.exit_code == 1
    assert "NAME=PATH" in result.stderr


def test_sign_iso_verify_round_trip(repo, tmp_path):
    assert invoke("genkey").exit_code == 0
    app = tmp_path / "app.efi"
    shutil.copyfile(EFI_APP, app)
    assert invoke("sign", str(app)).exit_code == 0
    iso = tmp_path / "app.iso"
    built = invoke("iso", "--uki", str(app), "-o", str(iso))
    assert built.exit_code == 0, built.stderr
    ok = invoke("verify", str(iso))
    assert ok.exit_code == 0, ok.stderr
    assert "OK" in ok.output
    data = bytearray(iso.read_bytes())
    data[-4096] ^= 0xFF  # inside the ESP at the end of the image
    iso.write_bytes(bytes(data))
    bad = invoke("verify", str(iso))
    assert bad.exit_code == 1
    assert "MISMATCH: app.iso: SHA-256" in bad.stderr


def test_sign_without_a_key_says_how_to_get_one(repo, tmp_path):
    app = tmp_path / "app.efi"
    shutil.copyfile(EFI_APP, app)
    result = invoke("sign", str(app))
    assert result.exit_code == 1
    assert "mvirt-build genkey" in result.stderr


def test_secureboot_vars_enrolls_the_configured_certificate(repo, tmp_path):
    assert invoke("genkey").exit_code == 0
    out = tmp_path / "vars.fd"
    result = invoke("secureboot-vars", str(out))
    assert result.exit_code == 0, result.stderr
    assert "db=['mvirt Secure Boot']" in result.output
