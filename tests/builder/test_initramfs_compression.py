"""Initramfs compression: the kernel's legacy lz4 format (blocks of at most 8 MiB) and zstd,
both read back by the comparison tools; an unknown format in the config is refused."""

import os
from pathlib import Path

import pytest

from mvirt_build import config
from mvirt_build.compare import LZ4_LEGACY_CHUNK, LZ4_LEGACY_MAGIC, decompress
from mvirt_build.errors import BuildError
from mvirt_build.stages.initramfs import compress

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_round_trip_across_several_blocks(compression):
    raw = os.urandom(1 << 20) + b"\0" * (LZ4_LEGACY_CHUNK + 12345)  # two lz4 blocks
    packed = compress(raw, compression, 12)
    assert len(packed) < len(raw)
    assert decompress(packed) == raw


def test_lz4_uses_the_legacy_frame_the_kernel_unpacks():
    packed = compress(b"070701" * 1000, "lz4", 12)
    assert packed[:4] == LZ4_LEGACY_MAGIC
    size = int.from_bytes(packed[4:8], "little")
    assert 8 + size == len(packed)  # one block, preceded by its little-endian size


def test_unknown_compression_is_refused(tmp_path):
    conf = (ROOT / "mvirt-build.conf").read_text()
    for name in ("kernel", "mkosi.conf"):
        source = ROOT / name
        (tmp_path / name).symlink_to(source)
    (tmp_path / "mvirt-build.conf").write_text(
        conf.replace("Compression=lz4", "Compression=brotli")
    )
    with pytest.raises(BuildError, match="Compression= is 'brotli'; use one of zstd, lz4"):
        config.load(tmp_path)
