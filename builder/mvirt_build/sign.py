"""Signs PE images (kernel, UKI) with sbsign and checks signatures with sbverify."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pefile

from mvirt_build.errors import BuildError
from mvirt_build.hashing import atomic_write
from mvirt_build.run import run

HINT = "apt-get install sbsigntool"
_SECURITY = pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_SECURITY"]


def sign_pe(src: Path, dst: Path, key: Path, cert: Path) -> None:
    """Write `src` signed with `key`/`cert` to `dst` (atomically), then check the signature.
    Any failure raises BuildError: an image that should be signed is never left unsigned."""
    tmp = dst.with_name(f".{dst.name}.signing-{os.getpid()}")
    try:
        run(["sbsign", "--key", key, "--cert", cert, "--output", tmp, src], hint=HINT)
        verify_pe(tmp, cert)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def verify_pe(path: Path, cert: Path) -> None:
    """Fail unless `path` carries a valid signature by `cert` over its current content."""
    try:
        run(["sbverify", "--cert", cert, path], hint=HINT)
    except BuildError as exc:
        detail = exc.message.splitlines()[1:6]
        raise BuildError(
            f"{path}: signature does not verify with {cert}" + "".join(f"\n{d}" for d in detail)
        ) from None


def is_signed(path: Path) -> bool:
    """True when the PE image has an Authenticode certificate table."""
    pe = pefile.PE(str(path), fast_load=True)
    try:
        entry = pe.OPTIONAL_HEADER.DATA_DIRECTORY[_SECURITY]
        return bool(entry.Size)
    finally:
        pe.close()


def write_uki(
    assemble: Callable[[bytes], bytes],
    kernel: Path,
    out: Path,
    unsigned_out: Path,
    key: Path | None,
    cert: Path | None,
) -> bool:
    """Write the UKI: `unsigned_out` from the kernel as built (the reproducible reference),
    and `out`, which with a key pair embeds the signed kernel and is itself signed, else is the
    unsigned image. Returns whether `out` is signed; any signing failure raises."""
    unsigned = assemble(kernel.read_bytes())
    atomic_write(unsigned_out, unsigned)
    if key is None or cert is None:
        atomic_write(out, unsigned)
        return False
    with tempfile.TemporaryDirectory(prefix=".sign-", dir=out.parent) as tmp:
        signed_kernel = Path(tmp) / "bzImage.signed"
        # The kernel is signed on its own first, so the stub's LoadImage of it passes too.
        sign_pe(kernel, signed_kernel, key, cert)
        image = Path(tmp) / "uki.efi"
        image.write_bytes(assemble(signed_kernel.read_bytes()))
        sign_pe(image, out, key, cert)
    return True
