"""A rootfs whose tree another build pruned from the shared cache is stale, not up to date."""

import dataclasses
import json

from mvirt_build.graph import Context
from mvirt_build.stages.rootfs import RootfsStage


def test_a_pruned_tree_changes_the_rootfs_inputs_but_not_its_cache_key(build_config, tmp_path):
    cfg = dataclasses.replace(build_config, output_dir=tmp_path / "out")
    ctx = Context(cfg)
    tree = tmp_path / "cache/rootfs/key/tree"
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/python3").write_text("")
    cfg.output_dir.mkdir()
    (cfg.output_dir / "rootfs.json").write_text(json.dumps({"tree": str(tree)}))
    stage = RootfsStage()
    present = stage.inputs(ctx)
    assert present["tree in the cache"] == "present"
    (tree / "usr/bin/python3").unlink()
    gone = stage.inputs(ctx)
    assert gone["tree in the cache"] == "gone"
    assert "tree in the cache" not in stage.content_inputs(ctx)
