"""End-to-end fixtures: the image the real pipeline builds (what `make uos` makes)."""

import subprocess
import sys
from pathlib import Path

import pytest

from mvirt_build import config

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(sys.executable).parent / "mvirt-build"


def mvirt_build(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run the mvirt-build CLI in the checkout, as a user would."""
    return subprocess.run(
        [str(BUILD), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def built_uki() -> Path:
    """Bring the checkout's image up to date (a no-op when `make uos` ran before) and return it."""
    proc = mvirt_build("uki")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_file()
    return path


@pytest.fixture(scope="session")
def build_config() -> config.BuildConfig:
    """The checkout's own configuration."""
    return config.load(ROOT)


DEMO_OVERLAY = ROOT / "tests" / "e2e" / "overlay-demo"
DEMO_OUTPUT = ROOT / "build" / "demo"


@pytest.fixture(scope="session")
def demo_uki() -> Path:
    """The image with the demo overlay (a small `hello` service instead of the node's daemons),
    built by the real pipeline into build/demo/ (kernel and rootfs come from the cache)."""
    proc = mvirt_build("--output-dir", str(DEMO_OUTPUT), "--extra-tree", str(DEMO_OVERLAY), "uki")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_file()
    return path
