"""An https kernel source goes through the pinned fetcher (downloads.lock or SourceSha256=)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from mvirt_build.errors import BuildError
from mvirt_build.stages.release import fetch_kernel_source

from .http_fixture import Behaviour, file_server

TARBALL = b"not really a kernel, but bytes with a known hash" * 100


@pytest.fixture
def setup(tmp_path, monkeypatch, build_config):
    monkeypatch.setenv("MVIRT_CACHE_DIR", str(tmp_path / "cache"))
    with file_server() as server:
        server.routes["/linux-6.1.20.tar.xz"] = Behaviour(body=TARBALL)
        url = server.url("/linux-6.1.20.tar.xz")
        kernel = dataclasses.replace(build_config.kernel, source=url, source_sha256=None)
        cfg = dataclasses.replace(build_config, root=tmp_path, kernel=kernel)
        yield cfg, url


def test_source_pinned_in_the_lock_is_fetched_and_verified(setup, tmp_path):
    cfg, url = setup
    sha = hashlib.sha256(TARBALL).hexdigest()
    (tmp_path / "downloads.lock").write_text(
        f'[[download]]\nname = "linux"\nurl = "{url}"\nsha256 = "{sha}"\nsize = {len(TARBALL)}\n'
    )
    path = fetch_kernel_source(cfg)
    assert path.read_bytes() == TARBALL
    assert path.name == sha


def test_source_pinned_by_config_hash(setup):
    cfg, _ = setup
    pinned = dataclasses.replace(
        cfg, kernel=dataclasses.replace(cfg.kernel, source_sha256="0" * 64)
    )
    with pytest.raises(BuildError, match="SHA-256 mismatch"):
        fetch_kernel_source(pinned)


def test_unpinned_source_url_is_refused(setup):
    cfg, _ = setup
    with pytest.raises(BuildError, match="not pinned"):
        fetch_kernel_source(cfg)
