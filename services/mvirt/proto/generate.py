"""Regenerates the Python gRPC code from the .proto files in this package.

Run ``python -m mvirt.proto.generate`` after editing a .proto file. The proto path is rooted
at the directory holding the ``mvirt`` package, so generated imports read
``from mvirt.proto import log_pb2`` and work from an installed package.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent
PROTO_ROOT = PROTO_DIR.parent.parent
PROTO_FILES = ("vmm.proto", "log.proto", "zfs.proto", "net.proto")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generated_names() -> list[str]:
    """Names of every file the generator writes, relative to this package."""
    return [Path(f).stem + s for f in PROTO_FILES for s in GENERATED_SUFFIXES]


def generate(out_root: Path) -> None:
    """Writes the generated modules to ``out_root/mvirt/proto/``."""
    # protoc_include holds google/protobuf/*.proto, needed for any well-known type.
    include = Path(protoc.__file__).resolve().parent / "_proto"
    (out_root / "mvirt" / "proto").mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(f"mvirt/proto/{name}" for name in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {', '.join(PROTO_FILES)}")


def main(argv: list[str] | None = None) -> int:
    """Regenerates in place (default) or into ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m mvirt.proto.generate", description=__doc__)
    parser.add_argument("--out", type=Path, help="root directory to write mvirt/proto/ under")
    args = parser.parse_args(argv)
    if args.out is not None:
        generate(args.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        for name in generated_names():
            shutil.copyfile(Path(tmp) / "mvirt" / "proto" / name, PROTO_DIR / name)
    print(f"regenerated {len(generated_names())} files in {PROTO_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
