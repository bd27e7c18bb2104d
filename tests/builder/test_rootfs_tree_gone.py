"""A rootfs whose tree another build pruned from the shared cache is stale, not up to date."""

import dataclasses
import json

from mvirt_build.graph import Context
from mvirt_build.stages.rootfs import RootfsStage


def test_a_pruned_tree_makes_the_rootfs_stale_without_changing_its_inputs(build_config, tmp_path):
    cfg = dataclasses.replace(build_config, output_dir=tmp_path / "out")
    ctx = Context(cfg)
    tree = tmp_path / "cache/rootfs/key/tree"
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/python3").write_text("")
    cfg.output_dir.mkdir()
    (cfg.output_dir / "rootfs.json").write_text(json.dumps({"tree": str(tree), "given": None}))
    stage = RootfsStage()
    before = stage.inputs(ctx)
    assert stage.output_problems(ctx) == []
    (tree / "usr/bin/python3").unlink()
    assert stage.output_problems(ctx) == [f"rootfs tree {tree} is missing"]
    # The stage's own record names the tree: were it an input, every build would change the
    # inputs it is checked against afterwards.
    assert stage.inputs(ctx) == before
