"""The digest cache never returns the digest of content a file no longer has."""

import os
import secrets
import stat
from pathlib import Path

import pytest

from mvirt_build.hashing import DigestCache, atomic_write, sha256_file
from mvirt_build.keys import generate_keys


def test_rewrite_within_the_same_mtime_tick_is_seen(tmp_path: Path) -> None:
    """A file rewritten with the same size right after it was hashed, so quickly that its mtime
    did not change (coarse timestamps), still gets its new digest."""
    path = tmp_path / "input"
    path.write_text("one")
    cache = DigestCache(tmp_path / "digests.json")
    first = cache.file(path)
    mtime = path.stat().st_mtime_ns
    path.write_text("two")
    os.utime(path, ns=(mtime, mtime))
    assert cache.file(path) == sha256_file(path) != first


def test_secret_never_goes_through_a_planted_temporary_file(tmp_path: Path) -> None:
    """A symlink planted where the key's temporary file would be does not receive the key."""
    victim = tmp_path / "victim"
    victim.write_text("not yours")
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    # The name the temporary file used to have (predictable from the process id).
    (keys_dir / f".mvirt.key.tmp-{os.getpid()}").symlink_to(victim)
    out = generate_keys(keys_dir, bits=2048)
    assert victim.read_text() == "not yours"
    assert stat.S_IMODE(out.key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in out.key.read_bytes()


def test_atomic_write_refuses_an_existing_temporary_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("not yours")
    monkeypatch.setattr(secrets, "token_hex", lambda n: "fixed")
    (tmp_path / ".secret.fixed.tmp").symlink_to(victim)
    with pytest.raises(FileExistsError):
        atomic_write(tmp_path / "secret", b"key", 0o600)
    assert victim.read_text() == "not yours"
    assert not (tmp_path / "secret").exists()
