"""The version every service reports from GetVersion."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """The installed mvirt distribution's version ("0+unknown" when not installed)."""
    try:
        return version("mvirt")
    except PackageNotFoundError:
        return "0+unknown"
