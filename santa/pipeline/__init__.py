"""The data pipeline: records -> steps (entry-point group ``santa.filters``) -> clean shards,
rejects and a report, on the local engine (processes of one machine) or on Ray Data.

``run_pipeline`` is the API; ``santa prepare`` (santa/pipeline/cli.py) and train.py's corpus
stage (santa/stages.py) both call it. See docs/pipeline.md.
"""

from santa.pipeline.engine import PipelineConfig, PipelineError, PipelineResult, StepSpec, run_pipeline

__all__ = ["PipelineConfig", "PipelineError", "PipelineResult", "StepSpec", "run_pipeline"]
