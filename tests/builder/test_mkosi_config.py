"""The rootfs stage takes mkosi's resolved configuration as its input: drop-ins, local
configuration, skeleton trees and scripts count; comments do not."""

from pathlib import Path

import pytest

from mvirt_build import mkosi_config
from mvirt_build.config import BuildConfig
from mvirt_build.graph import Context, Graph
from mvirt_build.stages.rootfs import RootfsStage

from .build_config import small_config


def make_config(root: Path) -> BuildConfig:
    (root / "mkosi.conf").write_text(
        "[Distribution]\nDistribution=debian\nRelease=bookworm\n\n[Content]\nPackages=python3\n"
    )
    return small_config(root)


def test_mkosi_conventions_are_rootfs_inputs(tmp_path: Path) -> None:
    config = make_config(tmp_path)

    def inputs() -> dict[str, str]:
        graph = Graph(Context(config), [RootfsStage()])
        return graph.full_inputs(graph.stages["rootfs"])

    first = inputs()
    # A comment changes nothing mkosi reads.
    conf = tmp_path / "mkosi.conf"
    conf.write_text("# the image's packages\n" + conf.read_text())
    assert inputs() == first
    # mkosi.local.conf and drop-ins are part of the configuration.
    (tmp_path / "mkosi.local.conf").write_text("[Content]\nPackages=less\n")
    local = inputs()
    assert local["mkosi configuration"] != first["mkosi configuration"]
    (tmp_path / "mkosi.conf.d").mkdir()
    (tmp_path / "mkosi.conf.d/10-zlib.conf").write_text("[Content]\nPackages=zlib1g\n")
    assert inputs()["mkosi configuration"] != local["mkosi configuration"]
    # A skeleton tree and a prepare script are found by their conventional names, by content.
    (tmp_path / "mkosi.skeleton/etc").mkdir(parents=True)
    (tmp_path / "mkosi.skeleton/etc/motd").write_text("hello\n")
    (tmp_path / "mkosi.prepare").write_text("#!/bin/sh\ntrue\n")
    (tmp_path / "mkosi.prepare").chmod(0o755)
    with_scripts = inputs()
    assert "SkeletonTrees ./mkosi.skeleton -> /" in with_scripts
    assert "PrepareScripts ./mkosi.prepare" in with_scripts
    (tmp_path / "mkosi.skeleton/etc/motd").write_text("changed\n")
    changed = inputs()
    assert (
        changed["SkeletonTrees ./mkosi.skeleton -> /"]
        != (with_scripts["SkeletonTrees ./mkosi.skeleton -> /"])
    )


def test_uki_settings_do_not_touch_the_rootfs(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    graph = Graph(Context(config), [RootfsStage()])
    before = graph.full_inputs(graph.stages["rootfs"])
    conf = tmp_path / "mkosi.conf"
    conf.write_text(conf.read_text() + "KernelCommandLine=console=ttyS0 quiet\n")
    graph = Graph(Context(config), [RootfsStage()])
    assert graph.full_inputs(graph.stages["rootfs"]) == before


def test_rootfs_input_is_the_same_inside_mkosi_sandbox_and_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mkosi adds host values to its summary (the terminal, the proxy, a random seed) that
    differ inside its own sandbox, where mkosi.postoutput runs the builder; and it sets
    variables such as IMAGE_ID for the scripts it runs."""
    outside = {
        "Environment": {"IMAGE_ID": "uos", "TERM": "dumb", "GIT_PROXY_SSL_CAINFO": "/ca"},
        "ProxyPeerCertificate": "/etc/ssl/certs/ca-certificates.crt",
        "Seed": "962cb971-5445-4dcf-868c-b99af8a4af29",
        "Packages": ["python3"],
    }
    inside = {
        "Environment": {"IMAGE_ID": "uos", "TERM": "xterm"},
        "ProxyPeerCertificate": None,
        "Seed": "d45de75c-f188-4a8d-833b-45dd8d9cbb09",
        "Packages": ["python3"],
    }

    def digest(_: Path) -> str:
        return "same"

    here = mkosi_config.rootfs_inputs(tmp_path, outside, digest, digest)
    monkeypatch.setenv("IMAGE_ID", "uos")  # as inside the sandbox
    assert mkosi_config.rootfs_inputs(tmp_path, inside, digest, digest) == here
    inside["Packages"] = ["python3", "less"]
    assert mkosi_config.rootfs_inputs(tmp_path, inside, digest, digest) != here
