"""The small BuildConfig builder tests start from: every path under one folder."""

import dataclasses
from pathlib import Path

from mvirt_build.config import BuildConfig, InitramfsConfig, KernelConfig, UkiConfig


def small_config(root: Path, **changes: object) -> BuildConfig:
    """Kernel "x" 6.1 with fragment ROOT/frag, init m:f, output in ROOT/out, cache in
    ROOT/cache; `changes` replace fields (kernel=..., initramfs=..., rootfs_tree=...)."""
    config = BuildConfig(
        root=root,
        output_dir=root / "out",
        cache_dir=root / "cache",
        source_date_epoch=0,
        kernel=KernelConfig("x", None, "6.1", root / "frag", ""),
        initramfs=InitramfsConfig("m:f", (), (), (), 3),
        uki=UkiConfig(root / "stub", "t"),
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]
