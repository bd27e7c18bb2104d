"""The configuration `make` and `mvirt-build` share, read one way."""

import subprocess
from pathlib import Path

import pytest

from mvirt_build import config
from mvirt_build.errors import BuildError

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
