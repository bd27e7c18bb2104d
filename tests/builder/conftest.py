"""Shared fixtures: the project's real build configuration."""

from pathlib import Path

import pytest

from mvirt_build import config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def build_config() -> config.BuildConfig:
    """The checkout's own configuration (build/ output, the user's cache)."""
    return config.load(ROOT)
