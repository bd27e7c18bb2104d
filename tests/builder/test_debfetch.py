"""Debian packages as pinned downloads: the host's mirror, apt: addresses, and taking one
file out of a real .deb."""

import subprocess

import pytest

from mvirt_build import debfetch
from mvirt_build.errors import BuildError


def test_no_bookworm_source_is_an_actionable_error(tmp_path):
    # Parsing the machine's sources is apt_sources' job (tests/builder/test_apt_sources.py).
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://mirror.invalid/debian trixie main\n")
    with pytest.raises(BuildError, match=r"serves bookworm main.*no mirror to fetch"):
        debfetch.host_mirror("bookworm", tmp_path)


def test_apt_url_parts():
    assert debfetch.parse_url("apt:sid/cloudhv-efi-x86-64=2026.08+ds-2") == (
        "sid",
        "cloudhv-efi-x86-64",
        "2026.08+ds-2",
    )
    for bad in ("apt:cloudhv-efi-x86-64=1", "apt:sid/pkg", "apt:sid/pkg=1 2", "apt:sid/P=1"):
        with pytest.raises(BuildError, match="not an apt:SUITE/PACKAGE=VERSION"):
            debfetch.parse_url(bad)


def test_member_of_a_deb_built_by_dpkg_deb(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: fake-firmware\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: mvirt tests <tests@mvirt.invalid>\nDescription: test package\n"
    )
    (pkg / "usr/share/fw").mkdir(parents=True)
    (pkg / "usr/share/fw/FW.fd").write_bytes(b"\x00firmware\xff" * 100)
    deb = tmp_path / "fake.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(pkg), str(deb)],
                   check=True, capture_output=True)  # fmt: skip
    assert debfetch.extract_member(deb, "usr/share/fw/FW.fd") == b"\x00firmware\xff" * 100
    with pytest.raises(BuildError, match=r"has no file usr/share/fw/OTHER\.fd"):
        debfetch.extract_member(deb, "usr/share/fw/OTHER.fd")
