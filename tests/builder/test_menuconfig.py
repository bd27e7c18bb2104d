"""menuconfig is how a user repairs a fragment Kconfig does not keep, so it must start then.

The kernel tree here is a fake (fake_kernel_tarball): a real menuconfig is interactive."""

import tarfile
from pathlib import Path

import pytest

from mvirt_build.config import KernelConfig
from mvirt_build.errors import BuildError
from mvirt_build.graph import Context
from mvirt_build.stages.kernel import configure, extract_source, menuconfig

from .build_config import small_config

FAKE_MAKEFILE = """VERSION = 6
PATCHLEVEL = 1
SUBLEVEL = 0
tinyconfig:
\tprintf 'CONFIG_64BIT=y\\n' > $(O)/.config
olddefconfig:
\tgrep -v CONFIG_NEEDS_DEPENDENCY $(O)/.config > $(O)/.config.new; mv $(O)/.config.new $(O)/.config
menuconfig:
\tprintf 'CONFIG_PICKED_IN_MENU=y\\n' >> $(O)/.config
"""


def fake_kernel_tarball(tmp_path: Path) -> Path:
    """A tarball with one top-level folder whose Makefile has the targets the builder runs."""
    tree = tmp_path / "src/linux-6.1.0"
    tree.mkdir(parents=True)
    (tree / "Makefile").write_text(FAKE_MAKEFILE)
    tarball = tmp_path / "linux.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(tree, arcname="linux-6.1.0")
    return tarball


def test_menuconfig_starts_when_the_fragment_check_fails(tmp_path: Path) -> None:
    fragment = tmp_path / "kernel.config"
    fragment.write_text("CONFIG_NEEDS_DEPENDENCY=y\n")
    cfg = small_config(
        tmp_path, kernel=KernelConfig(str(fake_kernel_tarball(tmp_path)), None, "6.1", fragment, "")
    )
    ctx = Context(cfg)
    source = extract_source(ctx)
    build_dir = tmp_path / "cache/kernel-build" / source.parent.name
    build_dir.mkdir(parents=True)
    # The build refuses the fragment ...
    with pytest.raises(BuildError, match="CONFIG_NEEDS_DEPENDENCY=y dropped"):
        configure(ctx, source, build_dir)
    # ... and menuconfig, which the error points to, still runs and writes the choice back.
    assert menuconfig(ctx) == {"CONFIG_PICKED_IN_MENU": "y"}
    assert "CONFIG_PICKED_IN_MENU=y" in fragment.read_text()
