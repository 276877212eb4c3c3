"""The plan of a pipeline run, shared by the engine that runs it and the report that accounts for
it: the names of its files on disk, and its steps cut into segments at each corpus step (see
``santa.pipeline.engine``'s docstring). Both import it; neither imports the other's internals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from santa.filters.base import CorpusStep, Step

FORMAT = "santa-pipeline/1"
INPUT_STEP = "input"
SUCCESS = "_SUCCESS"


class AccountingError(AssertionError):
    """kept + rejected != read somewhere: a bug in the engine or a step, never the user's."""


def renamed_plugin(step: Step) -> str | None:
    """The plugin a step runs when the pipeline names the step otherwise, else None."""
    return None if step.plugin in ("", step.name) else step.plugin


def step_identity(step: Step) -> list[Any]:
    """What keys a step's output: its name and parameters, and its plugin where the name is not it."""
    plugin = renamed_plugin(step)
    return [step.name, step.params()] if plugin is None else [step.name, plugin, step.params()]


@dataclass
class Segment:
    index: int
    after: str | None  # corpus step whose decisions apply on the way in
    steps: list[str]  # record steps, in order
    prepare_for: str | None  # corpus step prepared at the end (None: the last segment)


def plan_segments(steps: list[Step]) -> list[Segment]:
    segments: list[Segment] = []
    current = Segment(0, None, [], None)
    for step in steps:
        if isinstance(step, CorpusStep):
            current.prepare_for = step.name
            segments.append(current)
            current = Segment(len(segments), step.name, [], None)
        else:
            current.steps.append(step.name)
    segments.append(current)
    return segments
