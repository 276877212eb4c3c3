"""The contract of a pipeline step (entry-point group ``santa.filters``).

A step is built as ``cls(**params)`` from its Hydra config, then ``setup(context)`` once per
process, then fed records. Records are plain dicts with at least::

    content  str         the file's text
    lang     str         The Stack's language name ("Python", "Java", "JavaScript", ...)
    path     str         path inside the repository (The Stack: max_stars_repo_path)
    repo     str         repository name            (The Stack: max_stars_repo_name)
    stars    int | None  star count                 (The Stack: max_stars_count); None = unknown

plus whatever other fields the source had (passed through untouched), and ``id``: a stable
integer the engine assigns to each record of the input.

Two kinds of step:

* :class:`RecordStep` — per-record work (PII redaction, quality filters, decontamination): a pure
  function of one batch, so any engine (local processes, Ray Data) can run it anywhere, in any
  batch size, with the same result.
* :class:`CorpusStep` — work that needs the whole corpus (exact and near deduplication): the
  engine hands it every record that reached it and gets back decisions.

Every dropped record is kept by the engine in a rejects dataset with the step's name, its
statistic and its reason, so kept + rejected = read for every step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

Record = dict[str, Any]


@dataclass
class Decision:
    """What a step decided for one record."""

    keep: bool
    # The statistic the decision was made on (comment ratio, chars/token, Jaccard, ...).
    stat: float | None = None
    # Why it was dropped, short and human readable ("comment ratio 0.004 <= 0.01").
    reason: str = ""
    # New content for a transform (PII redaction); None leaves the content unchanged.
    content: str | None = None
    # Step-specific, JSON-serialisable details for the report/rejects (redaction spans without
    # the secret itself, the id of the kept file a duplicate matched, ...).
    details: dict[str, Any] | None = None


@dataclass
class StepContext:
    """What a step may need from its surroundings; set up once per process."""

    # Loads the project's tokenizer (for fertility); None when the run has none yet.
    tokenizer: Callable[[], Any] | None = None
    # Benchmark data (a user folder, then the copy shipped in santa.assets), for decontamination.
    data_dirs: list[Path] = field(default_factory=list)
    cache_dir: Path | None = None
    seed: int = 0
    workers: int = 1


class Step(ABC):
    """Common to both kinds. ``plugin`` is the entry-point name the step was loaded as, ``name``
    its name in the pipeline (the same, unless the pipeline runs the plugin twice)."""

    kind: ClassVar[str]
    # What ``Decision.stat`` measures, as the x axis of the report's histogram of it
    # ("characters / token"); empty: "<step name> statistic".
    stat_label: ClassVar[str] = ""
    name: str = ""
    plugin: str = ""

    def setup(self, context: StepContext) -> None:  # noqa: B027  (optional hook)
        """Load models, tables or tokenizers; called once per worker process."""

    def params(self) -> dict[str, Any]:
        """The parameters that change this step's output (keys the cache and the report)."""
        return {}


class RecordStep(Step):
    kind: ClassVar[str] = "record"

    @abstractmethod
    def process(self, batch: list[Record]) -> list[Decision]:
        """One Decision per record, in order. Pure: no state carried between batches."""


class CorpusStep(Step):
    kind: ClassVar[str] = "corpus"

    def prepare(self, batch: list[Record]) -> list[Any] | None:
        """Optional per-record part of the work (a content hash, a MinHash signature): pure like
        :meth:`RecordStep.process`, so the engine runs it in parallel over batches, before the
        corpus-wide part. Return one picklable value per record, or None for nothing to prepare;
        each value reaches :meth:`process_corpus` as ``record["_prepared"]``."""
        return None

    @abstractmethod
    def process_corpus(self, records: Iterable[Record]) -> dict[int, Decision]:
        """See every record that reached this step (each with its ``id``); return a Decision for
        each record id, or only for the dropped ones (ids left out are kept). The engine passes
        a re-iterable collection (records spilled to disk), so a step may take two passes; a
        ``details["duplicate_of"]`` id lands in the run's duplicates report."""
