"""What a pipeline run is given and gives back (its config, its steps, its result), and how a
step is built from its name and parameters; shared by the run loop and the workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from santa import registry
from santa.errors import SantaError
from santa.filters.base import CorpusStep, RecordStep, Step, StepContext

GROUP = "santa.filters"


class PipelineError(SantaError, ValueError):
    """A pipeline that cannot run as configured, or input that strict mode refuses."""


@dataclass
class StepSpec:
    """One step of a pipeline: ``name`` is its name in this pipeline (the report's, the rejects'),
    ``plugin`` the registered step it runs (None: the plugin of that name). Distinct names let
    one plugin run twice, e.g. The Stack's near-dedup and then dedup-alt's on top of it."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    plugin: str | None = None


@dataclass
class PipelineConfig:
    input: str | Path | list[str | Path]
    output: str | Path
    steps: list[StepSpec]
    engine: str = "local"
    # Local engine: worker processes (None: every core). 1 runs in this process.
    workers: int | None = None
    batch_size: int = 256
    # Larger files are rejected by the input check (The Stack itself dropped files over 1 MB).
    max_file_bytes: int = 1_000_000
    strict: bool = False
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    context: StepContext = field(default_factory=StepContext)
    # Anything else that decides the output and is not a step parameter (the tokenizer's identity).
    key_extra: dict[str, Any] = field(default_factory=dict)
    keep_work: bool = False
    progress: bool = True


@dataclass
class PipelineResult:
    output: Path
    report: dict[str, Any]
    reused: bool = False

    @property
    def data_files(self) -> list[Path]:
        return [self.output / f for u in self.report["inputs"] for f in u["data"]]

    def unit_data_files(self, input_path: str | Path) -> list[Path]:
        """Clean shards made from one input file."""
        want = str(Path(input_path))
        return [self.output / f for u in self.report["inputs"] if u["path"] == want for f in u["data"]]


# --------------------------------------------------------------------------------------------
# Steps and segments


def build_step(spec: StepSpec) -> Step:
    plugin = spec.plugin or spec.name
    try:
        cls = registry.get(GROUP, plugin)
    except registry.UnknownPluginError as exc:
        if spec.plugin:
            raise PipelineError(f"step {spec.name!r}: pipeline.params.{spec.name}.plugin={plugin!r}: {exc}") from exc
        raise registry.UnknownPluginError(
            f"{exc} To run a step twice, give the second its own name in pipeline.steps and "
            f"pipeline.params.<that name>.plugin=<the step>."
        ) from exc
    try:
        step = registry.build(GROUP, plugin, spec.params, where=f"pipeline.params.{spec.name}")
    except registry.PluginParamsError as exc:
        raise PipelineError(f"step {spec.name!r}: bad parameters: {exc}") from exc
    except TypeError as exc:
        raise PipelineError(
            f"step {spec.name!r}: bad parameters {spec.params} ({exc}); see pipeline.params.{spec.name}"
        ) from exc
    if not isinstance(step, (RecordStep, CorpusStep)):
        raise PipelineError(
            f"step {spec.name!r} ({cls}) is neither a RecordStep nor a CorpusStep (santa/filters/base.py)"
        )
    step.name = spec.name
    step.plugin = plugin
    return step
