"""An apt: download against a real signed Debian repository served on 127.0.0.1: what a frozen
(expired) mirror, a foreign signing key and a mirror without the suite do."""

from __future__ import annotations

import email.utils
import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mvirt_build import debfetch
from mvirt_build.errors import BuildError

from .http_fixture import Behaviour, FileServer, file_server

DEB_PATH = "pool/main/f/fake-firmware/fake-firmware_1.0_all.deb"
URL = "apt:sid/fake-firmware=1.0"


@dataclass
class Repo:
    server: FileServer
    keyring: Path  # the key that signs the repository
    other_keyring: Path  # a key that does not
    deb: bytes


def _gpg_key(home: Path, out: Path) -> None:
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
           "--passphrase", ""]  # fmt: skip
    subprocess.run([*gpg, "--quick-gen-key", "mvirt test archive <archive@mvirt.invalid>",
                    "ed25519", "sign", "never"], check=True, capture_output=True)  # fmt: skip
    out.write_bytes(subprocess.run([*gpg, "--export"], check=True, capture_output=True).stdout)


def _release(packages: bytes, date: float) -> str:
    """A sid Release file made at `date`, valid for a week (as Debian's)."""
    return (
        "Origin: mvirt-test\nSuite: sid\nCodename: sid\n"
        f"Date: {email.utils.formatdate(date, usegmt=True)}\n"
        f"Valid-Until: {email.utils.formatdate(date + 7 * 86400, usegmt=True)}\n"
        "Architectures: amd64 all\nComponents: main\nSHA256:\n"
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} main/binary-amd64/Packages\n"
    )


@pytest.fixture(scope="module")
def repo() -> Iterator[Repo]:
    # gpg-agent's socket path must stay short: not under pytest's deep tmp folders.
    work = Path(tempfile.mkdtemp(prefix="mvirt-aptrepo-"))
    homes = [work / "gpg", work / "gpg-other"]
    try:
        _gpg_key(homes[0], work / "archive.gpg")
        _gpg_key(homes[1], work / "other.gpg")
        pkg = work / "pkg"
        (pkg / "DEBIAN").mkdir(parents=True)
        (pkg / "DEBIAN" / "control").write_text(
            "Package: fake-firmware\nVersion: 1.0\nArchitecture: all\n"
            "Maintainer: mvirt tests <tests@mvirt.invalid>\nDescription: test package\n"
        )
        (pkg / "usr/share/fw").mkdir(parents=True)
        (pkg / "usr/share/fw/FW.fd").write_bytes(b"\x00firmware\xff" * 100)
        (work / DEB_PATH).parent.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(pkg),
                        str(work / DEB_PATH)], check=True, capture_output=True)  # fmt: skip
        packages = subprocess.run(["dpkg-scanpackages", "pool", "/dev/null"], cwd=work,
                                  check=True, capture_output=True).stdout  # fmt: skip
        # Made 30 days ago: its Valid-Until passed three weeks ago, like sid on a frozen mirror.
        release = _release(packages, time.time() - 30 * 86400)
        (work / "Release").write_text(release)
        signed = subprocess.run(
            ["gpg", "--homedir", str(homes[0]), "--batch", "--pinentry-mode", "loopback",
             "--passphrase", "", "--clearsign", "--output", "-", str(work / "Release")],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        deb = (work / DEB_PATH).read_bytes()
        with file_server() as server:
            server.routes["/debian/dists/sid/InRelease"] = Behaviour(body=signed)
            server.routes["/debian/dists/sid/main/binary-amd64/Packages"] = Behaviour(body=packages)
            server.routes[f"/debian/{DEB_PATH}"] = Behaviour(body=deb)
            yield Repo(server, work / "archive.gpg", work / "other.gpg", deb)
    finally:
        for home in homes:
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                           check=False, capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(autouse=True)
def own_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apt with none of this machine's configuration (which may switch checks off)."""
    monkeypatch.setenv("MVIRT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "apt.conf.d").mkdir()
    conf = tmp_path / "apt.conf"
    conf.write_text(
        f'Dir::Etc::parts "{tmp_path / "apt.conf.d"}";\n'
        f'Dir::Etc::main "{tmp_path / "no-apt.conf"}";\n'
    )
    monkeypatch.setenv("APT_CONFIG", str(conf))


def test_a_frozen_mirror_whose_release_expired_still_gives_the_package(repo, tmp_path):
    dest = tmp_path / "got.deb"
    debfetch.download_deb(URL, dest, mirror=repo.server.url("/debian"), keyring=str(repo.keyring))
    assert dest.read_bytes() == repo.deb
    assert debfetch.extract_member(dest, "usr/share/fw/FW.fd") == b"\x00firmware\xff" * 100


def test_a_signing_key_the_keyring_lacks_is_named(repo, tmp_path):
    with pytest.raises(BuildError) as failed:
        debfetch.download_deb(
            URL, tmp_path / "got.deb", mirror=repo.server.url("/debian"),
            keyring=str(repo.other_keyring),
        )  # fmt: skip
    assert f"which {repo.other_keyring} does not hold" in failed.value.message
    assert "debian-archive-keyring" in str(failed.value.hint)
    assert not (tmp_path / "got.deb").exists()


def test_a_mirror_without_the_suite_is_named(repo, tmp_path):
    mirror = repo.server.url("/other")
    with pytest.raises(BuildError) as failed:
        debfetch.download_deb(URL, tmp_path / "got.deb", mirror=mirror, keyring=str(repo.keyring))
    assert f"{mirror} (this machine's mirror for bookworm) does not carry Debian's sid" in (
        failed.value.message
    )
    assert "--download NAME=PATH" in str(failed.value.hint)
