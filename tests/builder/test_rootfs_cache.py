"""The rootfs tree is an output the graph tracks: kept while in use, pruned least recently
used first, and a missing or replaced tree makes the stage stale."""

import dataclasses
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from mvirt_build import mkosi_sources
from mvirt_build.config import BuildConfig
from mvirt_build.errors import BuildError
from mvirt_build.graph import Context, Graph
from mvirt_build.locking import locked
from mvirt_build.stages import rootfs

from .build_config import small_config


def make_config(root: Path, tree: Path | None = None) -> BuildConfig:
    (root / "mkosi.conf").write_text("[Distribution]\nDistribution=debian\n")
    return small_config(root, rootfs_tree=tree)


def fake_tree(path: Path) -> Path:
    """A directory shaped like a mkosi output (the rootfs stage checks for python3)."""
    (path / "usr/bin").mkdir(parents=True)
    (path / "usr/bin/python3").write_text("")
    path.with_suffix(".manifest").write_text(
        json.dumps({"packages": [{"name": "python3", "version": "3.11.2-1+b1"}]})
    )
    return path


def cache_entry(config: BuildConfig, key: str, age: int) -> Path:
    entry = config.cache_dir / "rootfs" / key
    fake_tree(entry / "tree")
    os.utime(entry, (1_000_000 + age, 1_000_000 + age))
    return entry


def record_entry(config: BuildConfig, entry: Path) -> None:
    rootfs.record_path(config).parent.mkdir(parents=True, exist_ok=True)
    record = {"tree": str(entry / "tree"), "digest": "", "packages": []}
    rootfs.record_path(config).write_text(json.dumps(record))


def test_pruning_spares_a_tree_in_use_and_removes_the_least_recently_used(tmp_path):
    config = make_config(tmp_path)
    ctx = Context(config)
    oldest = cache_entry(config, "oldest", age=0)
    old = cache_entry(config, "old", age=10)
    recent = cache_entry(config, "recent", age=20)
    newest = cache_entry(config, "newest", age=30)
    record_entry(config, oldest)
    with rootfs.using_tree(ctx) as tree:
        assert tree == oldest / "tree"
        # Using it made the oldest entry the most recently used one.
        rootfs.prune(config, keep=newest)
        assert oldest.exists() and newest.exists()
        assert not recent.exists() and not old.exists()


def test_pruning_never_removes_a_tree_another_build_reads(tmp_path):
    config = make_config(tmp_path)
    entries = [cache_entry(config, f"e{i}", age=i) for i in range(4)]
    reading = threading.Event()
    done = threading.Event()

    def reader() -> None:
        with locked(rootfs.tree_lock(config, "e0"), "tree", shared=True):
            reading.set()
            done.wait(30)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert reading.wait(30)
        rootfs.prune(config, keep=entries[3])
        assert entries[0].exists()  # in use by the other build: kept despite its age
        assert not entries[1].exists()
    finally:
        done.set()
        thread.join()


def test_missing_tree_makes_the_stage_stale(tmp_path):
    tree = fake_tree(tmp_path / "mkosi.output/rootfs")
    config = make_config(tmp_path, tree)
    graph = Graph(Context(config), [rootfs.RootfsStage()])
    assert graph.build(["rootfs"], echo=False) == ["rootfs"]
    assert not graph.staleness(graph.stages["rootfs"]).stale
    kept = rootfs.recorded_tree(graph.ctx)
    shutil.rmtree(kept)  # pruned by another build, or removed by hand
    reasons = graph.staleness(graph.stages["rootfs"]).reasons
    assert reasons == [f"rootfs tree {kept} is missing"]


def test_tree_from_mkosi_build_is_used_by_the_next_plain_build(tmp_path):
    """After `mkosi build` hands its tree over (mkosi.postoutput: --tree), `make uos`
    (no --tree) finds the rootfs up to date instead of running mkosi again."""
    tree = fake_tree(tmp_path / "mkosi.output/rootfs")
    given = make_config(tmp_path, tree)
    # mkosi built it from the repository list `make wheels` (or an earlier build) wrote.
    mkosi_sources.write(tmp_path, given.apt_dir)
    assert Graph(Context(given), [rootfs.RootfsStage()]).build(["rootfs"], echo=False)
    shutil.rmtree(tree)  # mkosi's staging folder is gone once it finishes
    plain = Graph(Context(dataclasses.replace(given, rootfs_tree=None)), [rootfs.RootfsStage()])
    assert plain.staleness(plain.stages["rootfs"]).reasons == []
    record = json.loads(rootfs.record_path(given).read_text())
    # Kept in the cache, named relative to the checkout: valid inside mkosi's sandbox and out.
    assert record["tree"].startswith("cache/rootfs/")
    assert (tmp_path / record["tree"] / "usr/bin/python3").is_file()
    assert record["packages"] == ["python3=3.11.2-1+b1"]


def test_a_newly_given_tree_replaces_the_recorded_one(tmp_path):
    first = fake_tree(tmp_path / "first/rootfs")
    config = make_config(tmp_path, first)
    assert Graph(Context(config), [rootfs.RootfsStage()]).build(["rootfs"], echo=False)
    second = fake_tree(tmp_path / "second/rootfs")
    graph = Graph(Context(dataclasses.replace(config, rootfs_tree=second)), [rootfs.RootfsStage()])
    assert graph.build(["rootfs"], echo=False) == ["rootfs"]
    assert json.loads(rootfs.record_path(config).read_text())["given"] == str(second)


def test_readers_share_a_tree_lock_and_keep_writers_out(tmp_path):
    path = tmp_path / "lock"
    with locked(path, "the tree", shared=True):
        with locked(path, "the tree", shared=True):
            pass  # a second reader is welcome
        with (
            pytest.raises(BuildError, match="the tree is in use by another build"),
            locked(path, "the tree"),
        ):
            pass


def set_packages(tree: Path, packages: dict[str, str]) -> None:
    tree.with_suffix(".manifest").write_text(
        json.dumps({"packages": [{"name": n, "version": v} for n, v in packages.items()]})
    )


def test_package_set_is_locked_and_other_versions_are_reported_or_refused(tmp_path, caplog):
    tree = fake_tree(tmp_path / "mkosi.output/rootfs")
    set_packages(tree, {"python3": "3.11.2-1+b1", "libc6": "2.36-9"})
    config = make_config(tmp_path, tree)
    assert Graph(Context(config), [rootfs.RootfsStage()]).build(["rootfs"], echo=False)
    lock = tmp_path / "rootfs.lock"
    assert [ln for ln in lock.read_text().splitlines() if not ln.startswith("#")] == [
        "libc6=2.36-9",
        "python3=3.11.2-1+b1",
    ]

    # The mirror moved on: a new mkosi run (the cache entry is gone) of the same configuration
    # resolves a newer libc6 and one more package.
    shutil.rmtree(tmp_path / "cache/rootfs")
    set_packages(tree, {"python3": "3.11.2-1+b1", "libc6": "2.36-9+deb12u4", "zlib1g": "1.2"})
    strict = Graph(Context(dataclasses.replace(config, locked=True)), [rootfs.RootfsStage()])
    with pytest.raises(
        BuildError, match=r"(?s)libc6 2\.36-9 -> 2\.36-9\+deb12u4.*zlib1g 1\.2 added"
    ):
        strict.build(["rootfs"], force=True, echo=False)
    assert strict.record(strict.stages["rootfs"]) is None
    assert "deb12u4" not in lock.read_text()

    shutil.rmtree(tmp_path / "cache/rootfs")
    lenient = Graph(Context(config), [rootfs.RootfsStage()])
    assert lenient.build(["rootfs"], force=True, echo=False) == ["rootfs"]
    assert "libc6 2.36-9 -> 2.36-9+deb12u4" in caplog.text
    assert "libc6=2.36-9+deb12u4" in lock.read_text()
