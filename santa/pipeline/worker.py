"""The work of a worker process or a Ray actor: :class:`SegmentWorker` runs one segment's record
steps over a batch of items (reading and validating the input in the first segment, applying the
previous corpus step's decisions in the others) and returns counts, rejects and annotations as
Arrow tables; survivors before a corpus step are spilled by the worker itself.

Two kinds of task: :func:`run_unit` runs a whole unit (an input file, or one unit's spill) and
writes its files and marker itself (:class:`~santa.pipeline.outputs.UnitWriter`), returning only
the marker; :func:`run_batch` / :func:`run_part` run one batch and return its results, for the
driver to write, when there are too few units to keep every worker busy."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from santa.errors import SantaError
from santa.filters.base import CorpusStep, Decision, DecisionTable, Record, RecordStep, Step, StepContext
from santa.pipeline.inputs import (
    Item,
    Unit,
    denormalise,
    iter_unit,
    normalise,
    parse_json_line,
    read_spill,
    unpack_record,
)
from santa.pipeline.parquet import rows_table
from santa.pipeline.plan import INPUT_STEP, AccountingError, Segment
from santa.pipeline.spec import PipelineError, StepSpec, build_step
from santa.pipeline.spill import spill_parts, write_spill_part

# What a worker is given for a segment: (step specs, the segment, the steps' context, the engine's
# options, the previous corpus step's decisions or their file's path).
WorkerArgs = tuple[list[StepSpec], Segment, StepContext, dict[str, Any], "DecisionTable | str | None"]

# The columns santa adds have one type in every file, whatever the values of a batch.
_TYPES = {
    "rejects": {
        "reject_step": pa.string(),
        "reject_stat": pa.float64(),
        "reject_reason": pa.string(),
        "reject_where": pa.string(),
        "reject_id": pa.int64(),
        "reject_details": pa.string(),
    },
    "annotations": {
        "id": pa.int64(),
        "where": pa.string(),
        "repo": pa.string(),
        "path": pa.string(),
        "step": pa.string(),
        "details": pa.string(),
    },
}


@dataclass
class BatchResult:
    # counts[step][lang] = [read files, read bytes, rejected files, rejected bytes]
    counts: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    # Built in the worker, so the driver only appends tables to files: the clean rows (in the last
    # segment; before it the worker spills the survivors itself), the rejects, the annotations.
    kept: pa.Table | None = None
    n_kept: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, pa.Table] = field(default_factory=dict)
    stats: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, step: str, lang: str, nbytes: int, rejected: bool) -> None:
        c = self.counts.setdefault(step, {}).setdefault(lang, [0, 0, 0, 0])
        c[0] += 1
        c[1] += nbytes
        if rejected:
            c[2] += 1
            c[3] += nbytes


def _nbytes(content: Any) -> int:
    if not isinstance(content, str):
        return 0
    # isascii() is O(1) (CPython knows), and an ASCII text's bytes are its characters: no copy.
    return len(content) if content.isascii() else len(content.encode("utf-8", "surrogatepass"))


def _storable(content: Any) -> tuple[Any, bool]:
    """Content Parquet can hold as UTF-8 text; undecodable bytes and lone surrogates escaped."""
    if isinstance(content, (bytes, bytearray)):
        return bytes(content).decode("utf-8", "backslashreplace"), True
    if isinstance(content, str):
        try:
            content.encode("utf-8")
        except UnicodeEncodeError:
            return content.encode("utf-8", "backslashreplace").decode("utf-8"), True
    return content, False


def _reject_row(rec: dict[str, Any] | None, where: str, rid: int, step: str, d: Decision) -> dict[str, Any]:
    row = denormalise(rec) if rec is not None else {}
    if "content" in row:
        row["content"], escaped = _storable(row["content"])
        if escaped:  # what was stored is not byte for byte what was read
            d = Decision(
                d.keep, d.stat, d.reason, d.content, {**(d.details or {}), "content_escaped": "backslashreplace"}
            )
    row.update(
        reject_step=step,
        reject_stat=d.stat,
        reject_reason=d.reason,
        reject_where=where,
        reject_id=rid,
        reject_details=json.dumps(d.details, default=str) if d.details else None,
    )
    return row


# The driver's own steps, already set up (run_pipeline builds and sets up every step first, to fail
# early): a segment run in the driver's process, or in a worker forked from it, uses them instead
# of building and setting up its own (PII's detect-secrets plugins, decontamination's automaton).
SET_UP: dict[str, tuple[dict[str, Any], Step]] = {}


def _set_up(spec: StepSpec, context: StepContext) -> Step:
    params, step = SET_UP.get(spec.name, (None, None))
    if step is not None and params == spec.params:
        return step
    step = build_step(spec)
    step.setup(context)
    return step


class SegmentWorker:
    """Runs one segment over batches of items; built once per process (or Ray actor)."""

    def __init__(
        self,
        specs: list[StepSpec],
        segment: Segment,
        context: StepContext,
        options: dict[str, Any],
        dropped: DecisionTable | str | None,
    ) -> None:
        self.segment = segment
        self.options = options
        if isinstance(dropped, str):  # the previous corpus step's decisions, saved by the driver: mapped
            dropped = DecisionTable.load(dropped)
        self.dropped: DecisionTable | dict[int, Decision] = dropped if dropped is not None else {}
        by_name = {s.name: s for s in specs}
        self.steps: list[RecordStep] = [_set_up(by_name[name], context) for name in segment.steps]  # type: ignore[misc]
        self.prepare: CorpusStep | None = None
        if segment.prepare_for:
            self.prepare = _set_up(by_name[segment.prepare_for], context)  # type: ignore[assignment]

    def _validate(self, raw: dict[str, Any]) -> tuple[str | None, int]:
        content = raw.get("content")
        if content is None:
            return "missing content", 0
        if isinstance(content, (bytes, bytearray)):
            try:
                content = raw["content"] = bytes(content).decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"invalid UTF-8 in content ({exc.reason} at byte {exc.start})", len(content)
        if not isinstance(content, str):
            return f"content is {type(content).__name__}, not text", 0
        try:
            nbytes = len(content) if content.isascii() else len(content.encode("utf-8"))
        except UnicodeEncodeError:
            return "invalid UTF-8 in content (a lone surrogate escape)", 0
        if "\x00" in content:
            return "binary content (NUL bytes)", nbytes
        limit = self.options["max_file_bytes"]
        if nbytes > limit:
            return f"{nbytes:,} bytes > max_file_bytes {limit:,}", nbytes
        return None, nbytes

    def run(self, items: list[Item]) -> BatchResult:
        res = BatchResult()
        strict = self.options["strict"]
        live: list[Record] = []
        first = self.segment.index == 0
        for rid, where, raw, error in items:
            if first:
                if isinstance(raw, bytes):  # a JSONL line, parsed here in the worker
                    raw, error = parse_json_line(raw)
                lang = (raw or {}).get("lang") or "unknown"
                if error is None:
                    error, nbytes = self._validate(raw)  # type: ignore[arg-type]
                else:
                    nbytes = 0
                if error is not None:
                    if strict:
                        raise PipelineError(
                            f"{where}: {error} (strict mode: fix or remove it, or run without strict=true)"
                        )
                    res.count(INPUT_STEP, lang, nbytes, True)
                    res.errors.append(f"{where}: {error}")
                    res.rejects.append(_reject_row(raw, where, rid, INPUT_STEP, Decision(False, None, error)))
                    continue
                rec = normalise(raw, rid, where)  # type: ignore[arg-type]
                res.count(INPUT_STEP, rec["lang"], nbytes, False)
                live.append(rec)
                continue
            assert raw is not None
            if isinstance(raw, bytes):  # from a spill: unpacked here, in the worker
                raw = unpack_record(raw)
            raw.pop("_prepared", None)  # the previous corpus step's, no use past it
            after = self.segment.after
            assert after is not None
            d = self.dropped.get(rid)
            res.count(after, raw.get("lang") or "unknown", _nbytes(raw["content"]), d is not None)
            if d is not None:
                res.rejects.append(_reject_row(raw, where, rid, after, d))
                self._note(res, after, raw, d)
            else:
                live.append(raw)
        for step in self.steps:
            if not live:
                break
            try:
                decisions = step.process(live)
            except SantaError as exc:
                raise PipelineError(
                    f"step {step.name!r} on {live[0]['_where']} .. {live[-1]['_where']}: {exc}"
                ) from exc
            if len(decisions) != len(live):
                raise AccountingError(f"step {step.name!r} returned {len(decisions)} decisions for {len(live)} records")
            survivors = []
            for rec, d in zip(live, decisions):
                lang = rec.get("lang") or "unknown"
                res.count(step.name, lang, _nbytes(rec["content"]), not d.keep)
                if d.stat is not None:
                    res.stats.setdefault(step.name, {}).setdefault(lang, []).append(float(d.stat))
                self._note(res, step.name, rec, d)
                if not d.keep:
                    res.rejects.append(_reject_row(rec, rec["_where"], rec["id"], step.name, d))
                    continue
                if d.content is not None:
                    rec["content"] = d.content
                survivors.append(rec)
            live = survivors
        if self.prepare is not None and live:
            prepared = self.prepare.prepare(live)
            if prepared is not None:
                for rec, p in zip(live, prepared, strict=True):
                    rec["_prepared"] = p
        res.n_kept = len(live)
        if live and self.segment.prepare_for is None:
            res.kept = rows_table([denormalise(r) for r in live])
        elif live:
            write_spill_part(Path(self.options["spill_root"]), self.segment.index, live)
        for kind in ("rejects", "annotations"):
            rows = getattr(res, kind)
            if rows:
                res.tables[kind] = rows_table(rows, _TYPES[kind])
                setattr(res, kind, [])
        return res

    @staticmethod
    def _note(res: BatchResult, step: str, rec: Record, d: Decision) -> None:
        if not d.details:
            return
        note = d.details.get("note")
        if note:
            notes = res.notes.setdefault(step, {})
            notes[str(note)] = notes.get(str(note), 0) + 1
        if d.keep:
            res.annotations.append(
                {
                    "id": rec["id"],
                    "where": rec.get("_where"),
                    "repo": rec.get("repo"),
                    "path": rec.get("path"),
                    "step": step,
                    "details": json.dumps(d.details, default=str),
                }
            )


def batches(items: Iterable[Item], size: int, max_bytes: int = 32 << 20) -> Iterator[list[Item]]:
    batch: list[Item] = []
    nbytes = 0
    for item in items:
        batch.append(item)
        rec = item[2]
        if isinstance(rec, bytes):  # a JSONL line, or a packed record from a spill
            nbytes += len(rec)
        elif rec is not None and isinstance(rec.get("content"), str):
            nbytes += len(rec["content"])
        if len(batch) >= size or nbytes >= max_bytes:
            yield batch
            batch, nbytes = [], 0
    if batch:
        yield batch


# Worker processes keep one SegmentWorker per segment: the pool lives for the whole run, so its
# start-up (imports, step set-up) is paid once, not once per segment.
_WORKERS: dict[int, SegmentWorker] = {}


def worker_init(parent: int | None = None) -> None:
    """Set up a worker process (a local pool's, with its ``parent``'s pid; a Ray actor, without)."""
    # Each worker is one core's worth: no nested thread pools fighting over the same cores.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if parent is not None:
        # The driver alone handles signals: it stops its workers and keeps what they finished
        # (santa.signals); and a worker dies with it, however it dies, not left an orphan.
        from santa.signals import die_with_parent, ignore_signals

        ignore_signals()
        die_with_parent(parent)


def unit_batches(unit: Unit, size: int) -> Iterator[list[Item]]:
    """A unit's batches, as every engine cuts them: a spill part per batch (a part is one batch of
    the segment that wrote it), an input file in batches of ``size`` records."""
    if unit.kind == "spill":
        for part in spill_parts(unit.path):
            yield list(read_spill(str(part)))
    else:
        yield from batches(iter_unit(unit), size)


def batch_tasks(unit: Unit, size: int) -> Iterator[tuple[Callable[[WorkerArgs, Any], BatchResult], Any]]:
    """The batch tasks of a unit, as ``(run_part or run_batch, its argument)``, cut as
    :func:`unit_batches` cuts them: a spill part goes by name (the worker reads it), an input
    file's batches are read here (by the driver) and sent."""
    if unit.kind == "spill":
        for part in spill_parts(unit.path):
            yield run_part, str(part)
    else:
        for batch in batches(iter_unit(unit), size):
            yield run_batch, batch


@dataclass(frozen=True)
class UnitTask:
    """A whole unit for one worker: it reads the unit, writes the unit's files and its marker."""

    unit: Unit
    batch_size: int
    work: str  # the run's work directory (.santa-work/<key>), on storage every worker sees
    drop_input: bool  # delete the unit's input spill once its marker is written


def run_unit(args: WorkerArgs, task: UnitTask, worker: SegmentWorker | None = None) -> dict[str, Any]:
    """A whole unit, in a worker: its batches, then its data, rejects, annotations (and, before a
    corpus step, its spill) written here, and its marker last. What goes back to the driver is
    the compact marker (counts, per-file statistics as arrays of doubles): never a record.
    ``worker``: the SegmentWorker to use (in the driver's process); else the process's own."""
    from santa.pipeline.outputs import UnitWriter, compact_marker

    seg: Segment = args[1]
    writer = UnitWriter(Path(task.work), seg, task.unit.index, seg.prepare_for is None)
    try:
        for batch in unit_batches(task.unit, task.batch_size):
            writer.add(worker.run(batch) if worker is not None else run_batch(args, batch))
        marker = writer.finish()
    except BaseException:
        writer.abort()
        raise
    if task.drop_input and task.unit.kind == "spill":
        # The marker vouches for the unit now: its input spill is read through (see engine.py).
        shutil.rmtree(task.unit.path, ignore_errors=True)
    out = compact_marker(marker)
    assert out is not None
    return out


def run_part(args: WorkerArgs, part: str) -> BatchResult:
    """One spill part, read by the worker itself (the driver sends only its name)."""
    return run_batch(args, list(read_spill(part)))


def run_batch(args: WorkerArgs, items: list[Item]) -> BatchResult:
    seg: Segment = args[1]
    worker = _WORKERS.get(seg.index)
    if worker is None:
        _WORKERS.clear()  # the previous segment is done: free its steps
        worker = _WORKERS[seg.index] = SegmentWorker(*args)
        _arrow_without_pandas()  # after the steps' imports, before the worker's first table
    return worker.run(items)


def _arrow_without_pandas() -> None:
    """In a worker process: pyarrow imports pandas (~0.4 s of CPU) at its first conversion of
    Python objects, only to ask whether they are pandas objects, which a worker's rows never
    are. That first check is made to find no pandas (unless a step imported it already); pyarrow
    still imports it for anything that needs pandas (``to_pandas``, ``from_pandas``), and pandas
    objects convert anyway through their Arrow interface (``__arrow_c_stream__``)."""
    import sys

    if "pandas" in sys.modules:
        return

    class NoPandasYet:
        @staticmethod
        def find_spec(name: str, path: Any = None, target: Any = None) -> None:
            if name == "pandas":
                raise ModuleNotFoundError("not for pyarrow's first look", name=name)

    sys.meta_path.insert(0, NoPandasYet)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(NoPandasYet)
