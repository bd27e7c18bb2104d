"""Staleness decisions of the build graph, on real files in a temporary folder."""

from pathlib import Path

import pytest

from mvirt_build.errors import BuildError
from mvirt_build.graph import Context, Graph, Stage

from .build_config import small_config as make_config


class Copy(Stage):
    """Copies an input file (or an upstream output) to its output, counting builds."""

    def __init__(self, name: str, source: str, deps: tuple[str, ...] = (), fail: bool = False):
        self.name = name
        self.source = source
        self.deps = deps
        self.fail = fail
        self.runs = 0

    def inputs(self, ctx: Context) -> dict[str, str]:
        src = ctx.config.root / self.source
        return {} if self.deps else {self.source: ctx.file_input(src)}

    def outputs(self, ctx: Context) -> list[Path]:
        return [ctx.config.output_dir / self.name]

    def build(self, ctx: Context) -> None:
        self.runs += 1
        src = (ctx.config.output_dir if self.deps else ctx.config.root) / self.source
        ctx.config.output_dir.mkdir(parents=True, exist_ok=True)
        (ctx.config.output_dir / self.name).write_bytes(src.read_bytes() + b"+")
        if self.fail:
            raise BuildError("stage failed halfway")


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Graph, Copy, Copy]:
    (tmp_path / "input.txt").write_text("one")
    first = Copy("first", "input.txt")
    second = Copy("second", "first", deps=("first",))
    return Graph(Context(make_config(tmp_path)), [first, second]), first, second


def test_first_build_builds_everything_then_nothing(chain):
    graph, first, second = chain
    assert graph.build(["second"], echo=False) == ["first", "second"]
    assert graph.build(["second"], echo=False) == []
    assert (first.runs, second.runs) == (1, 1)


def test_changed_input_rebuilds_the_stage_and_its_dependents(chain, tmp_path):
    graph, _first, _second = chain
    graph.build(["second"], echo=False)
    (tmp_path / "input.txt").write_text("two")
    check = graph.staleness(graph.stages["first"])
    assert check.stale and check.reasons == ["input.txt changed"]
    assert graph.build(["second"], echo=False) == ["first", "second"]
    assert (tmp_path / "out/second").read_text() == "two++"


def test_same_content_rewritten_is_not_a_change(chain, tmp_path):
    graph, _first, _second = chain
    graph.build(["second"], echo=False)
    (tmp_path / "input.txt").write_text("one")  # new mtime, same bytes
    assert graph.build(["second"], echo=False) == []


def test_modified_or_missing_output_makes_the_stage_stale(chain, tmp_path):
    graph, _first, _second = chain
    graph.build(["second"], echo=False)
    (tmp_path / "out/second").write_text("tampered")
    assert graph.staleness(graph.stages["second"]).reasons == ["output second was modified"]
    (tmp_path / "out/second").unlink()
    assert graph.staleness(graph.stages["second"]).reasons == ["output second is missing"]
    assert graph.build(["second"], echo=False) == ["second"]


def test_interrupted_build_is_not_marked_done(tmp_path):
    (tmp_path / "input.txt").write_text("one")
    failing = Copy("first", "input.txt", fail=True)
    graph = Graph(Context(make_config(tmp_path)), [failing])
    with pytest.raises(BuildError):
        graph.build(["first"], echo=False)
    assert graph.record(failing) is None
    assert graph.staleness(failing).stale
    failing.fail = False
    assert graph.build(["first"], echo=False) == ["first"]


def test_previous_record_is_dropped_when_a_rebuild_fails(chain, tmp_path):
    graph, first, _second = chain
    graph.build(["first"], echo=False)
    (tmp_path / "input.txt").write_text("two")
    first.fail = True
    with pytest.raises(BuildError):
        graph.build(["first"], echo=False)
    assert graph.record(first) is None


def test_force_rebuilds_only_the_named_order(chain):
    graph, first, second = chain
    graph.build(["second"], echo=False)
    assert graph.build(["first"], force=True, echo=False) == ["first"]
    # first's output bytes are the same, so second stays up to date
    assert graph.build(["second"], echo=False) == []
    assert (first.runs, second.runs) == (2, 1)


def test_unknown_stage_is_a_clear_error(chain):
    graph, _first, _second = chain
    with pytest.raises(BuildError, match="unknown stage 'nope'"):
        graph.build(["nope"], echo=False)


def test_plan_marks_dependents_of_a_stale_stage(chain, tmp_path):
    graph, _first, _second = chain
    graph.build(["second"], echo=False)
    (tmp_path / "input.txt").write_text("two")
    plan = {row.stage: row for row in graph.plan(["second"])}
    assert plan["first"].stale
    assert plan["second"].stale and plan["second"].reasons == ["first is stale"]


class EditsItsInput(Copy):
    """A stage during whose build its input file is edited (a user saving a file meanwhile)."""

    def build(self, ctx: Context) -> None:
        super().build(ctx)
        (ctx.config.root / self.source).write_text("edited meanwhile")


def test_input_edited_during_the_build_is_not_recorded_as_built(tmp_path):
    (tmp_path / "input.txt").write_text("one")
    stage = EditsItsInput("first", "input.txt")
    graph = Graph(Context(make_config(tmp_path)), [stage])
    with pytest.raises(BuildError, match=r"input\.txt changed while the stage was building"):
        graph.build(["first"], echo=False)
    assert graph.record(stage) is None
    # The next build makes the stage again from the edited input instead of "up to date".
    plain = Copy("first", "input.txt")
    again = Graph(Context(make_config(tmp_path)), [plain])
    assert again.build(["first"], echo=False) == ["first"]
    assert (tmp_path / "out/first").read_text() == "edited meanwhile+"


def test_stage_version_is_an_input(chain):
    graph, first, _second = chain
    graph.build(["second"], echo=False)
    first.version += 1
    assert graph.staleness(first).reasons == ["stage version changed"]
    assert graph.build(["second"], echo=False) == ["first"]


def test_prepare_runs_before_the_inputs_are_digested(tmp_path):
    """What a stage fetches into a cache before building (an input) does not count as an
    edit made during the build."""

    class Fetches(Copy):
        def inputs(self, ctx: Context) -> dict[str, str]:
            fetched = ctx.config.root / "fetched"
            return {"fetched": fetched.read_text() if fetched.exists() else "none"}

        def prepare(self, ctx: Context) -> None:
            (ctx.config.root / "fetched").write_text("yes")

    (tmp_path / "input.txt").write_text("one")
    stage = Fetches("first", "input.txt")
    graph = Graph(Context(make_config(tmp_path)), [stage])
    assert graph.build(["first"], echo=False) == ["first"]
    assert graph.build(["first"], echo=False) == []
