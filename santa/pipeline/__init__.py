"""The data pipeline: records -> steps (entry-point group ``santa.filters``) -> clean shards,
rejects and a report, on the local engine (processes of one machine) or on Ray Data.

``run_pipeline`` is the API; ``santa prepare`` (santa/pipeline/cli.py) and train.py's corpus
stage (santa/stages.py) both call it. See docs/pipeline.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from santa.pipeline.engine import run_pipeline
    from santa.pipeline.spec import PipelineConfig, PipelineError, PipelineResult, StepSpec

__all__ = ["PipelineConfig", "PipelineError", "PipelineResult", "StepSpec", "run_pipeline"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `santa prepare` (santa/pipeline/cli.py) can set up the
    # process before numpy and pyarrow load.
    if name == "run_pipeline":
        from santa.pipeline import engine

        return engine.run_pipeline
    if name in __all__:
        from santa.pipeline import spec

        return getattr(spec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
