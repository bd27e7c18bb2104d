"""mkosi's repository list is written from the machine's apt sources: a local mirror is used,
missing suites are derived from the bookworm mirror, and the list is a rootfs input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mvirt_build import mkosi_config, mkosi_sources
from mvirt_build.errors import BuildError
from mvirt_build.graph import Context, Graph
from mvirt_build.stages.rootfs import RootfsStage

from .test_mkosi_config import make_config

LOCAL = "http://mirror.lan.invalid/debian"


def apt_dir(tmp_path: Path, sources_list: str = "", deb822: str = "") -> Path:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(sources_list)
    if deb822:
        (apt / "sources.list.d" / "debian.sources").write_text(deb822)
    return apt


def stanzas(text: str) -> list[dict[str, str]]:
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and line[0] != "#")
        found.append(fields)
    return found


def test_the_machines_mirrors_are_used(tmp_path):
    apt = apt_dir(
        tmp_path,
        deb822=f"Types: deb\nURIs: {LOCAL}/\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\n\n"
        "Types: deb\nURIs: http://security.lan.invalid/sec\nSuites: bookworm-security\n"
        "Components: main\n",
    )
    text = mkosi_sources.render(apt)
    assert stanzas(text) == [
        {"Types": "deb", "URIs": LOCAL, "Suites": "bookworm bookworm-updates",
         "Components": "main", "Signed-By": mkosi_sources.KEYRING},
        {"Types": "deb", "URIs": "http://security.lan.invalid/sec",
         "Suites": "bookworm-security", "Components": "main",
         "Signed-By": mkosi_sources.KEYRING},
    ]  # fmt: skip
    assert "debian.org" not in text


def test_a_debootstrap_machine_gets_updates_and_security_beside_its_mirror(tmp_path):
    # debootstrap writes one line: bookworm main, nothing for -updates or -security.
    apt = apt_dir(tmp_path, sources_list=f"deb {LOCAL} bookworm main\n")
    found = stanzas(mkosi_sources.render(apt))
    assert [(s["URIs"], s["Suites"]) for s in found] == [
        (LOCAL, "bookworm bookworm-updates"),
        (f"{LOCAL}-security", "bookworm-security"),
    ]


def test_what_cannot_be_derived_is_named(tmp_path):
    apt = apt_dir(tmp_path, sources_list="deb http://mirror.lan.invalid/os bookworm main\n")
    with pytest.raises(BuildError, match=r"serves bookworm-security main.*does not end in"):
        mkosi_sources.render(apt)
    no_bookworm = apt_dir(tmp_path / "other", sources_list=f"deb {LOCAL} trixie main\n")
    with pytest.raises(BuildError, match=r"serves bookworm main.*no mirror to build"):
        mkosi_sources.render(no_bookworm)


def test_an_unchanged_list_is_not_rewritten(tmp_path):
    apt = apt_dir(tmp_path, sources_list=f"deb {LOCAL} bookworm main\n")
    root = tmp_path / "project"
    path = mkosi_sources.write(root, apt)
    before = path.stat()
    assert mkosi_sources.write(root, apt) == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    (apt / "sources.list").write_text("deb http://other.lan.invalid/debian bookworm main\n")
    mkosi_sources.write(root, apt)
    assert "URIs: http://other.lan.invalid/debian\n" in path.read_text()


def test_the_list_is_what_mkosi_reads_and_a_rootfs_input(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    apt = apt_dir(tmp_path, sources_list=f"deb {LOCAL} bookworm main\n")
    config = dataclasses.replace(make_config(project), apt_dir=apt)

    def inputs(cfg=config) -> dict[str, str]:
        graph = Graph(Context(cfg), [RootfsStage()])
        return graph.full_inputs(graph.stages["rootfs"])

    first = inputs()
    # mkosi itself finds the tree by its name (a plain `mkosi build` reads it too).
    trees = mkosi_config.summary(project, config.cache_dir)["PackageManagerTrees"]
    assert [t["Source"] for t in trees] == ["./mkosi.pkgmngr"]
    assert LOCAL in (project / mkosi_sources.RELATIVE_PATH).read_text()
    assert inputs() == first
    # Another mirror is another rootfs.
    (apt / "sources.list").write_text("deb http://other.lan.invalid/debian bookworm main\n")
    moved = inputs()
    key = "PackageManagerTrees ./mkosi.pkgmngr -> /"
    assert moved[key] != first[key]
    # A tree handed over (`--tree`) was built from the list there: it is left as it is.
    (apt / "sources.list").write_text(f"deb {LOCAL} bookworm main\n")
    assert inputs(dataclasses.replace(config, rootfs_tree=tmp_path / "tree")) == moved
