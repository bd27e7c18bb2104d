"""What makes a stage stale: exactly its inputs, not comments, unrelated commits or the bytes
of the builder's own code."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

from mvirt_build.config import BuildConfig, KernelConfig
from mvirt_build.graph import Context, Graph
from mvirt_build.pipeline import STAGES
from mvirt_build.stages.kernel import KernelStage

from .build_config import small_config


def make_config(root: Path) -> BuildConfig:
    tarball = root / "linux.tar.xz"
    tarball.write_bytes(b"not really a kernel")
    fragment = root / "kernel/kernel.config"
    fragment.parent.mkdir(exist_ok=True)
    fragment.write_text("# fragment\nCONFIG_64BIT=y\n# CONFIG_SWAP is not set\n")
    return small_config(
        root, kernel=KernelConfig(str(tarball), None, "6.1", fragment, "console=ttyS0")
    )


def test_comment_in_the_fragment_keeps_the_kernel_inputs(tmp_path: Path) -> None:
    ctx = Context(make_config(tmp_path))
    stage = KernelStage()
    before = stage.inputs(ctx)
    fragment = ctx.config.kernel.fragment
    fragment.write_text("\n# a comment about why\n" + fragment.read_text() + "\n\n")
    assert stage.inputs(ctx) == before
    fragment.write_text(fragment.read_text().replace("CONFIG_64BIT=y", "CONFIG_64BIT=n"))
    assert stage.inputs(ctx)["kernel/kernel.config"] != before["kernel/kernel.config"]


def test_tools_are_keyed_by_their_binary_without_running_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ran = tmp_path / "ran"
    for tool in ("gcc", "as", "ld"):
        script = bindir / tool
        script.write_text(f"#!/bin/sh\ntouch {ran}\necho {tool} 1.0\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bindir))
    ctx = Context(make_config(tmp_path))
    before = KernelStage().inputs(ctx)
    assert not ran.exists()
    # An upgrade replaces the binary: a new file, so a new key.
    new = bindir / "gcc.new"
    new.write_text("#!/bin/sh\necho gcc 2.0\n")
    new.chmod(0o755)
    os.replace(new, bindir / "gcc")
    after = KernelStage().inputs(ctx)
    assert after["tool gcc"] != before["tool gcc"]
    assert after["tool ld"] == before["tool ld"]


def git(root: Path, *args: str, when: int = 0) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": f"{when} +0000",
        "GIT_COMMITTER_DATE": f"{when} +0000",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    subprocess.run(["git", "-C", str(root), *args], check=True, env=env, capture_output=True)


def test_source_date_epoch_comes_from_the_stage_inputs_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    config = make_config(tmp_path)
    git(tmp_path, "init", "-q")
    (tmp_path / "mkosi.extra/etc").mkdir(parents=True)
    (tmp_path / "mkosi.extra/etc/hostname").write_text("uos\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "image", when=1_700_000_000)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/notes.md").write_text("notes\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "docs", when=1_800_000_000)

    def epochs() -> dict[str, int]:
        ctx = Context(config)
        Graph(ctx, (stage() for stage in STAGES))
        return {name: ctx.source_date_epoch(name) for name in ("initramfs", "uki", "iso")}

    assert epochs() == {"initramfs": 1_700_000_000, "uki": 1_700_000_000, "iso": 1_700_000_000}
    (tmp_path / "kernel/kernel.config").write_text("CONFIG_64BIT=y\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "kernel", when=1_750_000_000)
    # The kernel dates the UKI (its input), not the initramfs.
    assert epochs() == {"initramfs": 1_700_000_000, "uki": 1_750_000_000, "iso": 1_750_000_000}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "42")
    assert epochs()["initramfs"] == 42
