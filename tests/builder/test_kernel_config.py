"""The kernel stage's configuration step against the real Kconfig of the kernel source."""

from pathlib import Path

import pytest

from mvirt_build import kconfig
from mvirt_build.errors import BuildError
from mvirt_build.graph import Context
from mvirt_build.stages.kernel import configure, extract_source

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source(build_config) -> Path:
    return extract_source(Context(build_config))


def test_project_fragment_survives_olddefconfig(build_config, source, tmp_path):
    configure(Context(build_config), source, tmp_path)
    resolved = kconfig.parse((tmp_path / ".config").read_text())
    assert resolved["CONFIG_EFI_STUB"] == "y"
    assert resolved["CONFIG_RD_ZSTD"] == "y"


def test_option_with_unmet_dependency_is_reported_by_name(build_config, source, tmp_path):
    # VIRTIO_BLK depends on BLOCK and VIRTIO, which tinyconfig leaves off: Kconfig drops it.
    fragment = tmp_path / "frag.config"
    fragment.write_text("CONFIG_VIRTIO_BLK=y\nCONFIG_PRINTK=y\n")
    cfg = build_config.__class__(
        **{
            **build_config.__dict__,
            "kernel": build_config.kernel.__class__(
                **{**build_config.kernel.__dict__, "fragment": fragment}
            ),
        }
    )
    with pytest.raises(BuildError) as err:
        configure(Context(cfg), source, tmp_path / "obj")
    assert "CONFIG_VIRTIO_BLK=y dropped" in str(err.value)
    assert "CONFIG_PRINTK" not in str(err.value)
