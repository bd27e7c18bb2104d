"""The digest cache never returns the digest of content a file no longer has."""

import os
from pathlib import Path

from mvirt_build.hashing import DigestCache, sha256_file


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
