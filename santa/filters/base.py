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

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
import pyarrow as pa

Record = dict[str, Any]
T = TypeVar("T")


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


_DECISION_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("stat", pa.float64()),
        ("reason", pa.large_string()),
        ("duplicate_of", pa.int64()),
        ("component_size", pa.int64()),
        ("similarity", pa.float64()),
        ("details", pa.large_string()),
    ]
)
# The details a dedup step gives, as columns, in the order its details dict had them.
_DETAIL_COLUMNS = ("duplicate_of", "component_size", "similarity")


class DecisionTable(Mapping[int, Decision]):
    """The dropped records' decisions of a corpus step, as Arrow columns sorted by id: a row costs
    its reason's bytes and ~50 more, where a :class:`Decision` object with its details dict costs
    ~570 bytes of Python heap; saved as one Arrow file, every worker maps the same pages.

    Columns: ``id``; ``stat`` and ``reason``; the dedup details ``duplicate_of``,
    ``component_size`` and ``similarity`` (null where absent); ``details``: any other details
    dict, as JSON (then it holds all of them). A :class:`Decision` is built when one is asked for.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table.combine_chunks() if table.num_rows else _DECISION_SCHEMA.empty_table()
        self.ids = self.table.column("id").to_numpy()
        if len(self.ids) > 1 and not (self.ids[1:] > self.ids[:-1]).all():
            raise ValueError("DecisionTable: ids must be sorted and distinct")

    @classmethod
    def from_columns(
        cls,
        ids: Any,
        stat: Any,
        reason: list[str],
        duplicate_of: Any = None,
        component_size: Any = None,
        similarity: Any = None,
    ) -> DecisionTable:
        """Dropped records' decisions from arrays (in any order; ``stat`` and the details may be
        None for a whole column)."""
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        n = len(ids)

        def col(values: Any, dtype: Any, type: pa.DataType) -> pa.Array:
            if values is None:
                return pa.nulls(n, type)
            return pa.array(np.asarray(values, dtype=dtype)[order], type)

        return cls(
            pa.table(
                {
                    "id": pa.array(ids[order], pa.int64()),
                    "stat": col(stat, np.float64, pa.float64()),
                    "reason": pa.array(reason, pa.large_string()).take(pa.array(order)),
                    "duplicate_of": col(duplicate_of, np.int64, pa.int64()),
                    "component_size": col(component_size, np.int64, pa.int64()),
                    "similarity": col(similarity, np.float64, pa.float64()),
                    "details": pa.nulls(n, pa.large_string()),
                },
                schema=_DECISION_SCHEMA,
            )
        )

    @classmethod
    def from_mapping(cls, decisions: Mapping[int, Decision]) -> DecisionTable:
        """The dropped ones of any step's decisions (a third-party step's dict)."""
        if isinstance(decisions, DecisionTable):
            return decisions
        rows = sorted((int(i), d) for i, d in decisions.items() if not d.keep)
        dup = [d.details.get("duplicate_of") if d.details else None for _, d in rows]
        return cls(
            pa.table(
                {
                    "id": pa.array([i for i, _ in rows], pa.int64()),
                    "stat": pa.array([None if d.stat is None else float(d.stat) for _, d in rows], pa.float64()),
                    "reason": pa.array([d.reason for _, d in rows], pa.large_string()),
                    "duplicate_of": pa.array(
                        [int(x) if isinstance(x, (int, np.integer)) else None for x in dup], pa.int64()
                    ),
                    "component_size": pa.nulls(len(rows), pa.int64()),
                    "similarity": pa.nulls(len(rows), pa.float64()),
                    "details": pa.array(
                        [json.dumps(d.details, default=str) if d.details else None for _, d in rows], pa.large_string()
                    ),
                },
                schema=_DECISION_SCHEMA,
            )
        )

    @classmethod
    def concat(cls, tables: list[DecisionTable]) -> DecisionTable:
        """The decisions of several tables of distinct ids, as one."""
        tables = [t for t in tables if len(t)]
        if not tables:
            return cls(_DECISION_SCHEMA.empty_table())
        if len(tables) == 1:
            return tables[0]
        t = pa.concat_tables([t.table.select(_DECISION_SCHEMA.names) for t in tables])
        return cls(t.take(pa.array(np.argsort(t.column("id").to_numpy(), kind="stable"))))

    def save(self, path: Path) -> None:
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, self.table.schema) as writer:
            writer.write_table(self.table)

    @classmethod
    def load(cls, path: str | Path) -> DecisionTable:
        """Memory-mapped: the pages are the file's, shared by every process that loads it."""
        # The stream format, one thread: opening the file format starts Arrow's I/O thread pool,
        # which would keep a later run in this process from forking its workers.
        options = pa.ipc.IpcReadOptions(use_threads=False)
        return cls(pa.ipc.open_stream(pa.memory_map(str(path), "r"), options=options).read_all())

    def _index(self, rid: int) -> int:
        i = int(np.searchsorted(self.ids, rid))
        return i if i < len(self.ids) and self.ids[i] == rid else -1

    def get(self, rid: int, default: Any = None) -> Any:
        i = self._index(int(rid))
        return default if i < 0 else self._decision(i)

    def __getitem__(self, rid: int) -> Decision:
        i = self._index(int(rid))
        if i < 0:
            raise KeyError(rid)
        return self._decision(i)

    def __contains__(self, rid: object) -> bool:
        return isinstance(rid, (int, np.integer)) and self._index(int(rid)) >= 0

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __len__(self) -> int:
        return len(self.ids)

    def _decision(self, i: int) -> Decision:
        row = {k: self.table.column(k)[i].as_py() for k in _DECISION_SCHEMA.names[1:]}
        if row["details"] is not None:
            details = json.loads(row["details"])
        else:
            details = {k: row[k] for k in _DETAIL_COLUMNS if row[k] is not None} or None
        return Decision(False, row["stat"], row["reason"], None, details)

    def duplicates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, the id each duplicates, the step's statistic or NaN) of the rows that name a
        ``duplicate_of``."""
        dup = self.table.column("duplicate_of")
        valid = dup.is_valid().to_numpy(zero_copy_only=False)
        stat = self.table.column("stat").to_numpy(zero_copy_only=False).astype(np.float64)
        return self.ids[valid], dup.to_numpy(zero_copy_only=False)[valid].astype(np.int64), stat[valid]

    def with_locations(self, ids: np.ndarray, repos: list[Any], paths: list[Any]) -> DecisionTable:
        """This table with the repo and path of each dropped record and of the record it
        duplicates (``ids``: sorted, with their ``repos`` and ``paths``), for the duplicates
        report once the spilled records are gone."""
        ids = np.asarray(ids, dtype=np.int64)
        repo_arr, path_arr = pa.array(repos, pa.large_string()), pa.array(paths, pa.large_string())

        def lookup(want: np.ndarray, valid: np.ndarray) -> tuple[pa.Array, pa.Array]:
            pos = np.searchsorted(ids, want).clip(0, max(len(ids) - 1, 0))
            found = valid & (ids[pos] == want) if len(ids) else np.zeros(len(want), dtype=bool)
            idx = pa.array(np.where(found, pos, 0), mask=~found) if len(ids) else pa.nulls(len(want), pa.int64())
            return (
                (repo_arr.take(idx), path_arr.take(idx)) if len(ids) else (pa.nulls(len(want), pa.large_string()),) * 2
            )

        t = self.table.select(_DECISION_SCHEMA.names)
        repo, path = lookup(self.ids, np.ones(len(self.ids), dtype=bool))
        dup_col = t.column("duplicate_of")
        dup_valid = dup_col.is_valid().to_numpy(zero_copy_only=False)
        dup_repo, dup_path = lookup(dup_col.fill_null(0).to_numpy(), dup_valid)
        for name, col in (
            ("repo", repo),
            ("path", path),
            ("duplicate_of_repo", dup_repo),
            ("duplicate_of_path", dup_path),
        ):
            t = t.append_column(pa.field(name, pa.large_string()), col)
        return DecisionTable(t)

    def reason_of(self, rid: int) -> str:
        i = self._index(int(rid))
        return "" if i < 0 else self.table.column("reason")[i].as_py()


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

    def setup(self, context: StepContext) -> None:  # noqa: B027  (an optional hook, empty by default)
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

    # False: process_corpus reads only each record's id, lang, repo, path, _where and _prepared,
    # so the engine hands it records without their content (not decompressed, not unpickled),
    # and the content of chosen ones through ``records.select(ids)`` where it offers that.
    reads_content: ClassVar[bool] = True

    @abstractmethod
    def process_corpus(self, records: Iterable[Record]) -> Mapping[int, Decision]:
        """See every record that reached this step (each with its ``id``); return a Decision for
        each record id, or only for the dropped ones (ids left out are kept), as a dict or a
        :class:`DecisionTable`. The engine passes a re-iterable collection (records spilled to
        disk), so a step may take two passes; a ``details["duplicate_of"]`` id lands in the run's
        duplicates report. The engine's collection is also a :class:`CorpusParts`: a step may
        run its corpus-wide work on the engine's workers (``map_parts``, ``map``) and write
        scratch files under ``records.scratch`` (:func:`corpus_parts` gives any iterable that
        interface, run in this process)."""


# -- corpus-wide work where the data is --------------------------------------------------------
#
# A corpus step may do its corpus-wide work in the engine's workers rather than in the driver:
# the collection ``process_corpus`` receives from the engine is then a :class:`CorpusParts`, the
# corpus cut into parts (contiguous runs of records, in input order) that tasks read themselves.
# A step that only iterates over the records needs none of it.


@runtime_checkable
class CorpusPart(Protocol):
    """A contiguous run of the corpus's records, as a task sees it (picklable: it names where
    the records are, it does not hold them). ``index``: its position among the parts."""

    index: int

    def ids(self) -> np.ndarray:
        """The records' ids (int64), in order."""
        ...

    def prepared(self) -> list[Any]:
        """Each record's prepared value (``CorpusStep.prepare``'s), None where there is none."""
        ...

    def records(self, rows: Sequence[int] | np.ndarray | None = None, content: bool = True) -> list[Record]:
        """The records at the given positions (all by default), whole, or without their
        content with ``content=False`` (as a step with ``reads_content = False`` iterates them)."""
        ...


@runtime_checkable
class CorpusParts(Protocol):
    """What a corpus step may ask of the records the engine hands it, besides iterating over
    them: run tasks on the engine's workers. ``fn`` must be picklable (a module-level function,
    or a ``functools.partial`` of one); the results come back in order, as they are done."""

    scratch: Path | None

    def __iter__(self) -> Iterator[Record]: ...

    def __len__(self) -> int: ...

    def map_parts(self, fn: Callable[[CorpusPart], T]) -> Iterator[T]:
        """``fn(part)`` for each part, in the workers; results in part order."""
        ...

    def map(self, fn: Callable[[Any], T], args: Iterable[Any]) -> Iterator[T]:
        """``fn(arg)`` for each arg, in the workers; results in order."""
        ...


def prepared_values(step: CorpusStep, part: CorpusPart) -> list[Any]:
    """The part's prepared values (``step.prepare``'s), computed here, in the task, for the
    records that came without one (e.g. records handed to ``process_corpus`` directly)."""
    prepared = part.prepared()
    missing = [i for i, p in enumerate(prepared) if p is None]
    if missing:
        for i, value in zip(missing, step.prepare(part.records(missing, content=True)) or []):
            prepared[i] = value
    return prepared


class _ListPart:
    """A slice of a list of records as a :class:`CorpusPart`."""

    def __init__(self, index: int, records: list[Record]) -> None:
        self.index = index
        self._records = records

    def ids(self) -> np.ndarray:
        return np.array([int(r["id"]) for r in self._records], dtype=np.int64)

    def prepared(self) -> list[Any]:
        return [r.get("_prepared") for r in self._records]

    def records(self, rows: Sequence[int] | np.ndarray | None = None, content: bool = True) -> list[Record]:
        if rows is None:
            return list(self._records)
        return [self._records[int(i)] for i in rows]


class ListParts:
    """Records in memory (a test's list, a one-shot iterator) as :class:`CorpusParts` whose tasks
    run in this process, in order: a step has one code path whoever calls it. Parts of
    ``part_rows`` records, in the given order."""

    def __init__(self, records: Iterable[Record], part_rows: int = 4096, scratch: Path | None = None) -> None:
        self._records = list(records)
        self.part_rows = max(1, int(part_rows))
        self.scratch = scratch

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def map_parts(self, fn: Callable[[CorpusPart], T]) -> Iterator[T]:
        step = self.part_rows
        for k, i in enumerate(range(0, len(self._records), step)):
            yield fn(_ListPart(k, self._records[i : i + step]))

    def map(self, fn: Callable[[Any], T], args: Iterable[Any]) -> Iterator[T]:
        for a in args:
            yield fn(a)


def corpus_parts(records: Iterable[Record]) -> CorpusParts:
    """``records`` as :class:`CorpusParts`: the engine's own collection as it is, anything else
    (a list, an iterator) held in memory with tasks run in this process."""
    if isinstance(records, CorpusParts):
        return records
    return ListParts(records, scratch=getattr(records, "scratch", None))
