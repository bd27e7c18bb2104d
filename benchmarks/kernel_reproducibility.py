"""Is the kernel build itself reproducible? Builds the configured kernel once more, in a fresh
object folder, and compares its bzImage with the one the pipeline cached (built in another
folder, at another time). Prints the SHA-256 of both, and the timing.

    .venv/bin/python benchmarks/kernel_reproducibility.py

About 10 minutes on 2 cores. Run `make kernel` first so there is a cached kernel to compare.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from mvirt_build import config
from mvirt_build.compare import diff_files
from mvirt_build.graph import Context
from mvirt_build.hashing import sha256_text
from mvirt_build.stages.kernel import KBUILD_ENV, KernelStage, configure, extract_source, make


def main() -> int:
    cfg = config.load()
    ctx = Context(cfg)
    key = sha256_text(json.dumps(KernelStage().inputs(ctx), sort_keys=True))[:24]
    cached = cfg.cache_dir / "kernel" / key / "bzImage"
    if not cached.is_file():
        print(f"no cached kernel for these inputs ({cached}); run `make kernel` first")
        return 1
    source = extract_source(ctx)
    with tempfile.TemporaryDirectory(prefix="mvirt-kernel-repro-") as tmp:
        build_dir = Path(tmp) / "obj"
        build_dir.mkdir()
        started = time.monotonic()
        configure(ctx, source, build_dir)
        make(ctx, source, build_dir, f"-j{os.cpu_count() or 1}", "bzImage")
        took = time.monotonic() - started
        fresh = build_dir / "arch/x86/boot/bzImage"
        a = hashlib.sha256(cached.read_bytes()).hexdigest()
        b = hashlib.sha256(fresh.read_bytes()).hexdigest()
        print(f"{'build':<28} {'sha256':<64} size")
        print(f"{'cached (pipeline)':<28} {a} {cached.stat().st_size}")
        print(f"{'fresh folder':<28} {b} {fresh.stat().st_size}")
        print(f"build identity: {KBUILD_ENV}")
        print(f"fresh build took {took:.0f} s")
        if a == b:
            print("kernel: REPRODUCIBLE (bit-identical bzImage)")
            return 0
        print("kernel: NOT reproducible:")
        for line in diff_files(cached, fresh):
            print(f"  {line}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
