"""The configuration `make` and `mvirt-build` share, read one way."""

import subprocess
from pathlib import Path

import pytest

from mvirt_build import config
from mvirt_build.errors import BuildError
from mvirt_build.stages.uki import os_release

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("on", True), ("1", True), ("off", False), ("no", False), ("0", False)],
)
def test_one_reading_of_yes_and_no(value: str, expected: bool) -> None:
    assert config.parse_flag(value, "X=") is expected


def test_unclear_flag_names_the_setting() -> None:
    with pytest.raises(BuildError, match=r"\[Downloads\] AllowMissing= must be yes or no"):
        config.parse_flag("perhaps", "[Downloads] AllowMissing=")


def test_make_sets_nothing_mvirt_build_does_not_read_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`make uos` runs `mvirt-build uki` in the environment the user has: the default for
    missing downloads is in mvirt-build.conf, so both commands build the same thing."""
    monkeypatch.delenv("MVIRT_ALLOW_MISSING_DOWNLOADS", raising=False)
    database = subprocess.run(
        ["make", "-C", str(ROOT), "-p", "-n", "-q", "bootstrap"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    assert "MVIRT_ALLOW_MISSING_DOWNLOADS" not in database
    assert config.load(ROOT).allow_missing_downloads is True


def test_environment_overrides_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MVIRT_ALLOW_MISSING_DOWNLOADS", "0")
    assert config.load(ROOT).allow_missing_downloads is False


def test_settings_mkosi_has_keys_for_come_from_mkosi(tmp_path: Path) -> None:
    (tmp_path / "kernel.version").write_text("6.1\n")
    (tmp_path / "mvirt-build.conf").write_text(
        "[Kernel]\nSource=/nonexistent.tar.xz\nVersion=kernel.version\nFragment=frag\n"
        "[Initramfs]\nInit=m:f\n[Uki]\nStub=/stub\nOsRelease=mvirt test\n"
    )
    (tmp_path / "mkosi.conf").write_text(
        "[Distribution]\nDistribution=debian\n[Output]\nImageId=uos\nImageVersion=7\n"
        "[Content]\nKernelCommandLine=console=ttyS0 quiet\n"
    )
    (tmp_path / "mkosi.conf.d").mkdir()
    (tmp_path / "mkosi.conf.d/debug.conf").write_text("[Content]\nKernelCommandLine=debug\n")
    cfg = config.load(tmp_path, cache_dir=tmp_path / "cache")
    assert cfg.kernel.cmdline == "console=ttyS0 quiet debug"  # drop-ins append, as in mkosi
    osrel = os_release(cfg.uki)
    assert "IMAGE_ID=uos\n" in osrel and "IMAGE_VERSION=7\n" in osrel
