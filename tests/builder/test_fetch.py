"""The fetcher against a real local HTTP server: good, corrupt, truncated, missing, stalled."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mvirt_build.errors import BuildError
from mvirt_build.fetch import FetchOptions, downloads_cache, fetch, fetch_all
from mvirt_build.lockfile import DownloadsLock, LockEntry

from .http_fixture import Behaviour, FileServer, file_server

STATIC = Path("/bin/busybox")  # busybox-static: a real static x86-64 binary
DYNAMIC = Path("/bin/ls")

FAST = FetchOptions(connect_timeout=2, read_timeout=0.5, attempts=2, backoff=0, progress=False)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MVIRT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def server():
    with file_server() as s:
        yield s


def entry_for(
    url: str, body: bytes, *, check: str = "elf-static", size: int | None = -1
) -> LockEntry:
    return LockEntry(
        name="cloud-hypervisor",
        url=url,
        sha256=hashlib.sha256(body).hexdigest(),
        size=len(body) if size == -1 else size,
        install="/usr/bin/cloud-hypervisor",
        check=check,
        mode=0o755,
        note="",
    )


def serve(server: FileServer, path: str, **kw) -> str:
    server.routes[path] = Behaviour(**kw)
    return server.url(path)


def no_partial_files(cache: Path) -> bool:
    d = cache / "downloads"
    return not d.exists() or not [p for p in d.iterdir() if p.name.startswith(".")]


def test_good_download_lands_in_cache_by_hash(server, cache):
    body = STATIC.read_bytes()
    entry = entry_for(serve(server, "/ch", body=body), body)
    got = fetch(entry, FAST)
    assert got.source == "download"
    assert got.path == cache / "downloads" / entry.sha256
    assert got.path.read_bytes() == body
    assert no_partial_files(cache)


def test_second_fetch_uses_cache_without_network(server):
    body = STATIC.read_bytes()
    entry = entry_for(serve(server, "/ch", body=body), body)
    fetch(entry, FAST)
    again = fetch(entry, FetchOptions(offline=True, progress=False))
    assert again.source == "cache"
    assert server.routes["/ch"].hits == 1


def test_wrong_checksum_is_refused_and_nothing_is_cached(server, cache):
    body = STATIC.read_bytes()
    tampered = bytearray(body)
    tampered[1000] ^= 0xFF
    entry = entry_for(serve(server, "/ch", body=bytes(tampered)), body)
    with pytest.raises(BuildError, match="SHA-256 mismatch"):
        fetch(entry, FAST)
    assert not (cache / "downloads" / str(entry.sha256)).exists()
    assert no_partial_files(cache)


def test_truncated_transfer_is_retried_then_reported(server, cache):
    body = STATIC.read_bytes()
    entry = entry_for(serve(server, "/ch", body=body, truncate_at=4096), body)
    with pytest.raises(BuildError, match=r"after 2 attempts.*(truncated|broken)") as err:
        fetch(entry, FAST)
    assert server.routes["/ch"].hits == 2
    assert "--allow-missing-downloads" in str(err.value)
    assert no_partial_files(cache)


def test_truncation_without_pinned_size_is_caught_by_content_length(server):
    body = STATIC.read_bytes()
    entry = entry_for(serve(server, "/ch", body=body, truncate_at=100), body, size=None)
    with pytest.raises(BuildError, match=r"truncated|broken"):
        fetch(entry, FAST)


def test_404_fails_at_once_with_the_url(server):
    body = b"x"
    entry = entry_for(serve(server, "/gone", body=body, status=404), body)
    with pytest.raises(BuildError, match=r"does not exist \(HTTP 404\)") as err:
        fetch(entry, FAST)
    assert entry.url in str(err.value)
    assert server.routes["/gone"].hits == 1


def test_stalled_transfer_times_out(server, cache):
    body = STATIC.read_bytes()
    entry = entry_for(serve(server, "/slow", body=body, stall_after=1000), body)
    with pytest.raises(BuildError, match="stalled"):
        fetch(entry, FAST)
    assert no_partial_files(cache)


def test_server_error_is_retried_with_success(server):
    body = STATIC.read_bytes()
    entry = entry_for(serve(server, "/flaky", body=body, fail_first=1), body)
    assert fetch(entry, FAST).source == "download"
    assert server.routes["/flaky"].hits == 2


def test_dynamic_binary_is_refused_for_a_static_slot(server, cache):
    body = DYNAMIC.read_bytes()
    entry = entry_for(serve(server, "/ls", body=body), body)
    with pytest.raises(BuildError, match=r"statically linked.*interpreter"):
        fetch(entry, FAST)
    assert not (cache / "downloads" / str(entry.sha256)).exists()


def test_local_file_is_verified_and_cached_for_offline_builds(tmp_path):
    body = STATIC.read_bytes()
    entry = entry_for("http://127.0.0.1:9/never-contacted", body)
    got = fetch(entry, FetchOptions(offline=True, progress=False), local=STATIC)
    assert got.source == "local"
    assert fetch(entry, FetchOptions(offline=True, progress=False)).source == "cache"


def test_local_file_with_wrong_hash_is_refused(tmp_path):
    entry = entry_for("http://127.0.0.1:9/x", STATIC.read_bytes())
    with pytest.raises(BuildError, match=r"SHA-256 mismatch|bytes, the lock pins"):
        fetch(entry, FetchOptions(offline=True, progress=False), local=DYNAMIC)


def test_offline_without_cache_says_what_to_do():
    entry = entry_for("http://127.0.0.1:9/x", b"abc", check="none")
    with pytest.raises(BuildError, match="offline") as err:
        fetch(entry, FetchOptions(offline=True, progress=False))
    assert "--download cloud-hypervisor=PATH" in str(err.value)


def test_unpinned_entry_is_never_downloaded(server):
    body = STATIC.read_bytes()
    url = serve(server, "/ch", body=body)
    entry = LockEntry("cloud-hypervisor", url, None, None, "/usr/bin/x", "none", 0o755, "")
    with pytest.raises(BuildError, match="no SHA-256") as err:
        fetch(entry, FAST)
    assert "mvirt-build lock cloud-hypervisor --file PATH" in str(err.value)
    assert server.routes["/ch"].hits == 0


def test_corrupt_cache_entry_is_replaced(server):
    body = STATIC.read_bytes()
    entry = entry_for(serve(server, "/ch", body=body), body)
    first = fetch(entry, FAST)
    first.path.write_bytes(b"bit rot")
    assert fetch(entry, FAST).source == "download"
    assert first.path.read_bytes() == body


def test_allow_missing_collects_failures_and_fetches_the_rest(server, tmp_path):
    body = STATIC.read_bytes()
    good = entry_for(serve(server, "/ch", body=body), body)
    fw = LockEntry(
        "hypervisor-fw", server.url("/nope"), "0" * 64, 3, "/usr/share/mvirt/fw", "none", 0o644, ""
    )
    lock = DownloadsLock(tmp_path / "downloads.lock", (good, fw))
    with pytest.raises(BuildError, match="hypervisor-fw"):
        fetch_all(lock, FAST)
    report = fetch_all(lock, FAST, allow_missing=True)
    assert [f.entry.name for f in report.fetched] == ["cloud-hypervisor"]
    assert [e.name for e, _ in report.missing] == ["hypervisor-fw"]


def test_cache_dir_follows_environment(cache):
    assert downloads_cache() == cache / "downloads"


def test_unresolvable_host_fails_at_once_without_retries():
    body = b"abc"
    entry = entry_for("http://no-such-host.invalid/x", body, check="none")
    slow = FetchOptions(connect_timeout=2, read_timeout=1, attempts=4, backoff=30, progress=False)
    with pytest.raises(BuildError, match=r"cannot resolve no-such-host\.invalid"):
        fetch(entry, slow)  # with backoff=30 a retry would hit the test timeout
