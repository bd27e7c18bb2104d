"""The build graph: stages declare inputs and outputs; a stage is up to date iff the digest of
its inputs equals the one recorded when its outputs were made, and those outputs are intact.

A stage's record is removed before it builds and written only after it succeeded, so an
interrupted build never leaves a stage marked done. Its inputs are digested before the build
and again after it: when they differ (a file edited while the stage was building) the record is
not written, so the next build makes the stage again instead of calling the old output current.
"""

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mvirt_build.config import BuildConfig, source_date_epoch
from mvirt_build.errors import BuildError
from mvirt_build.hashing import DigestCache, atomic_write, sha256_text

log = logging.getLogger("mvirt_build")


class Context:
    """What every stage sees: the configuration and the digest cache."""

    def __init__(self, config: BuildConfig) -> None:
        self.config = config
        self.digests = DigestCache(config.state_dir / "digests.json")
        # Stage name → the checkout paths its output is made from (its own and its
        # dependencies'), filled in by the graph.
        self.sources: dict[str, tuple[str, ...]] = {}
        self._epochs: dict[tuple[str, ...], int] = {}

    def source_date_epoch(self, stage: str) -> int:
        """SOURCE_DATE_EPOCH for `stage`: the newest commit touching its inputs (so a commit
        to the docs does not change its output), or $SOURCE_DATE_EPOCH."""
        paths = self.sources.get(stage, ())
        if paths not in self._epochs:
            self._epochs[paths] = source_date_epoch(self.config.root, paths)
        return self._epochs[paths]

    def file_input(self, path: Path) -> str:
        """The digest of an input file, or a readable error when it is missing."""
        try:
            return self.digests.file(path)
        except FileNotFoundError as exc:
            raise BuildError(f"input file {path} does not exist") from exc


class Stage(ABC):
    """One step of the build. Subclasses name their inputs, outputs and how to build."""

    name: str = ""
    deps: tuple[str, ...] = ()
    description: str = ""
    # The stage's code is keyed by this number, not by its source bytes: raise it when a change
    # to the stage (or the modules it uses) changes what it produces.
    version: int = 1
    # Checkout paths (files or folders) whose commits date the output (SOURCE_DATE_EPOCH).
    sources: tuple[str, ...] = ()

    @abstractmethod
    def inputs(self, ctx: Context) -> dict[str, str]:
        """Name → digest (or literal value) of everything the outputs depend on."""

    @abstractmethod
    def outputs(self, ctx: Context) -> list[Path]:
        """The files this stage makes."""

    def prepare(self, ctx: Context) -> None:
        """Get what the build needs that is itself an input (downloads into their cache),
        before the inputs are digested for the record. Most stages need nothing."""
        return

    @abstractmethod
    def build(self, ctx: Context) -> None:
        """Make the outputs; raise BuildError on failure."""

    def output_problems(self, ctx: Context) -> list[str]:
        """Why outputs the record does not list (trees kept elsewhere) are not usable."""
        return []

    def summary(self, ctx: Context) -> str:
        """One line about the result (size, path), printed after the stage."""
        return ""


@dataclass
class Record:
    """What a stage's outputs were made from."""

    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class Staleness:
    """Whether a stage must build, and why."""

    stage: str
    stale: bool
    reasons: list[str]


class Graph:
    """Stages by name, built in dependency order."""

    def __init__(self, ctx: Context, stages: Iterable[Stage]) -> None:
        self.ctx = ctx
        self.stages = {s.name: s for s in stages}
        for name in self.stages:
            paths = {p for dep in self.order([name]) for p in dep.sources}
            ctx.sources[name] = tuple(sorted(paths))

    def order(self, targets: Iterable[str]) -> list[Stage]:
        """The stages needed for `targets`, dependencies first."""
        ordered: list[Stage] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            if name not in self.stages:
                raise BuildError(f"unknown stage {name!r}", f"stages: {', '.join(self.stages)}")
            seen.add(name)
            for dep in self.stages[name].deps:
                visit(dep)
            ordered.append(self.stages[name])

        for target in targets:
            visit(target)
        return ordered

    # -- records -----------------------------------------------------------------------------

    def _record_path(self, stage: Stage) -> Path:
        return self.ctx.config.state_dir / f"{stage.name}.json"

    def record(self, stage: Stage) -> Record | None:
        """The stored record of `stage`, if it has one."""
        try:
            raw = json.loads(self._record_path(stage).read_text())
            return Record(inputs=raw["inputs"], outputs=raw["outputs"])
        except (OSError, ValueError, KeyError):
            return None

    def _write_record(self, stage: Stage, record: Record) -> None:
        data = {"inputs": record.inputs, "outputs": record.outputs}
        atomic_write(self._record_path(stage), json.dumps(data, indent=1))

    def output_digest(self, stage: Stage) -> str:
        """One digest over the recorded outputs of `stage`: what its dependents take as input."""
        record = self.record(stage)
        if record is None:
            return "missing"
        return sha256_text(json.dumps(record.outputs, sort_keys=True))

    def full_inputs(self, stage: Stage) -> dict[str, str]:
        """The stage's own inputs plus the output digests of the stages it depends on."""
        inputs = dict(stage.inputs(self.ctx))
        inputs["stage version"] = str(stage.version)
        for dep in stage.deps:
            inputs[f"{dep} output"] = self.output_digest(self.stages[dep])
        return inputs

    # -- decisions ---------------------------------------------------------------------------

    def staleness(self, stage: Stage) -> Staleness:
        """Compare the stage's current inputs and outputs with its record."""
        record = self.record(stage)
        if record is None:
            return Staleness(stage.name, True, ["never built (or its last build did not finish)"])
        reasons: list[str] = []
        inputs = self.full_inputs(stage)
        for key in sorted(set(inputs) | set(record.inputs)):
            if key not in record.inputs:
                reasons.append(f"new input {key}")
            elif key not in inputs:
                reasons.append(f"input {key} is gone")
            elif inputs[key] != record.inputs[key]:
                reasons.append(f"{key} changed")
        for rel, digest in record.outputs.items():
            path = self.ctx.config.output_dir / rel
            if not path.exists():
                reasons.append(f"output {rel} is missing")
            elif self.ctx.digests.file(path) != digest:
                reasons.append(f"output {rel} was modified")
        reasons.extend(stage.output_problems(self.ctx))
        return Staleness(stage.name, bool(reasons), reasons)

    def plan(self, targets: Iterable[str]) -> list[Staleness]:
        """Staleness of every stage `targets` need, a stale dependency making its dependents
        stale too (what `status` shows before anything is built)."""
        found: dict[str, Staleness] = {}
        for stage in self.order(targets):
            check = self.staleness(stage)
            for dep in stage.deps:
                if found[dep].stale:
                    check.stale = True
                    check.reasons.append(f"{dep} is stale")
            found[stage.name] = check
        return list(found.values())

    # -- building ----------------------------------------------------------------------------

    def build(self, targets: Iterable[str], force: bool = False, echo: bool = True) -> list[str]:
        """Bring `targets` up to date; return the names of the stages that were built."""
        built: list[str] = []
        try:
            for stage in self.order(targets):
                check = self.staleness(stage)
                if not force and not check.stale:
                    if echo:
                        log.info("%-10s up to date", stage.name)
                    continue
                if echo:
                    why = "forced" if force and not check.stale else "; ".join(check.reasons[:3])
                    log.info("%-10s building (%s)", stage.name, why)
                self._record_path(stage).unlink(missing_ok=True)
                started = time.monotonic()
                stage.prepare(self.ctx)
                before = self.full_inputs(stage)
                stage.build(self.ctx)
                after = self.full_inputs(stage)
                if after != before:
                    changed = sorted(
                        k for k in set(before) | set(after) if before.get(k) != after.get(k)
                    )
                    raise BuildError(
                        f"{stage.name}: {', '.join(changed)} changed while the stage was building, "
                        "so its output may be made from the old version and is not recorded",
                        "run the build again",
                    )
                outputs = {
                    p.relative_to(self.ctx.config.output_dir).as_posix(): self.ctx.digests.file(p)
                    for p in stage.outputs(self.ctx)
                }
                self._write_record(stage, Record(inputs=before, outputs=outputs))
                built.append(stage.name)
                if echo:
                    summary = stage.summary(self.ctx)
                    log.info(
                        "%-10s done in %.1f s%s",
                        stage.name,
                        time.monotonic() - started,
                        f" — {summary}" if summary else "",
                    )
        finally:
            self.ctx.digests.save()
        return built
