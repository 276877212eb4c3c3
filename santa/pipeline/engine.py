"""The pipeline engine: runs the steps named in the config over the input, on the local engine
(processes of this machine) or on Ray Data, and accounts for every record.

The steps are cut into segments at each corpus step (dedup):

    segment 0: read + validate -> record steps ... -> prepare(corpus step A)   -> spill, per input unit
    corpus step A over the spill (driver)                                        -> decisions
    segment 1: apply A's decisions -> record steps ... -> prepare(B)           -> spill
    ...
    last segment: apply decisions -> record steps ...                          -> clean shards

Segments run unit by unit (one unit per input file) in batches; each finished unit leaves its
files and then a marker (its counts, written last) under ``<output>/.santa-work/<key>/``, and
each corpus step its decisions, so an interrupted run resumes where it stopped. The published
outputs appear only when everything is done, ``_SUCCESS`` last.

Between two corpus steps the records never pass through the driver: each worker spills its
batch's survivors itself (a part per batch, records compressed), the next segment's workers read
the parts by name, and a unit's spill is deleted once the next segment's marker for that unit is
written. The corpus steps read only the spill's small columns (ids and prepared values).

Both engines run the same :class:`SegmentWorker` over the same items (same ids, same batches of
one unit), so they keep the same files.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from santa import registry
from santa.cache_key import config_key
from santa.errors import SantaError
from santa.filters.base import CorpusStep, Decision, DecisionTable, Record, RecordStep, Step, StepContext
from santa.pipeline import report as reporting
from santa.pipeline.inputs import (
    ID_SHIFT,
    Item,
    Unit,
    denormalise,
    iter_unit,
    normalise,
    pack_record,
    parse_json_line,
    read_spill,
    resolve_units,
    unpack_record,
)
from santa.pipeline.parquet import rows_table, tmp_name, write_json, write_table
from santa.pipeline.plan import (
    FORMAT,
    INPUT_STEP,
    SUCCESS,
    AccountingError,
    Segment,
    plan_segments,
    step_identity,
)

WORK = ".santa-work"
GROUP = "santa.filters"
# Rows of clean data / rejects per Parquet file: bounds the memory one input unit needs.
_FLUSH_ROWS = 20_000
_FLUSH_BYTES = 256 << 20
# With workers=null the local engine starts one worker per this much input (up to every core).
_BYTES_PER_WORKER = 4 << 20
_SPILL_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("where", pa.string()),
        ("lang", pa.string()),
        ("repo", pa.string()),
        ("path", pa.string()),
        ("prepared", pa.large_binary()),
        ("record", pa.large_binary()),
    ]
)
# The spill's small columns are compressed by Parquet; the records are compressed already.
_SPILL_COMPRESSION = {
    "id": "zstd",
    "where": "zstd",
    "lang": "zstd",
    "repo": "zstd",
    "path": "zstd",
    "prepared": "none",
    "record": "none",
}


def spill_dir(root: Path, segment: int, unit: int) -> Path:
    """Where a segment's survivors of one input file are spilled: a directory of parts."""
    return root / f"s{segment}-u{unit:05d}.spill"


def spill_parts(path: str | Path) -> list[Path]:
    """A spill directory's parts, in input order (named by their first record's id)."""
    return sorted(Path(path).glob("part-*.parquet"))


def write_spill_part(root: Path, segment: int, records: list[Record]) -> Path:
    """Spill one batch's survivors (all of one input file), from the worker that processed them:
    the driver never reads, pickles or writes the records between two corpus steps. The part is
    named by its first id, so the parts sort in input order whichever worker wrote them."""
    first = int(records[0]["id"])
    d = spill_dir(root, segment, first >> ID_SHIFT)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"part-{first:020d}.parquet"
    tmp = tmp_name(path)
    try:
        pq.write_table(spill_table(records), tmp, compression=_SPILL_COMPRESSION, use_dictionary=["lang", "repo"])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def spill_table(records: list[Record]) -> pa.Table:
    """Survivors of a segment, each packed whole (santa's fields and the source's: see
    :func:`~santa.pipeline.inputs.pack_record`), with the fields a corpus step reads without
    unpacking them: the id, location, language, and ``_prepared`` (pickled on its own)."""

    def text(v: Any) -> str | None:
        return None if v is None else str(v)

    prepared = [r.pop("_prepared", None) for r in records]
    return pa.table(
        {
            "id": pa.array([r["id"] for r in records], pa.int64()),
            "where": pa.array([text(r.get("_where")) for r in records], pa.string()),
            "lang": pa.array([text(r.get("lang")) for r in records], pa.string()),
            "repo": pa.array([text(r.get("repo")) for r in records], pa.string()),
            "path": pa.array([text(r.get("path")) for r in records], pa.string()),
            "prepared": pa.array(
                [None if p is None else pickle.dumps(p, protocol=5) for p in prepared], pa.large_binary()
            ),
            "record": pa.array([pack_record(r) for r in records], pa.large_binary()),
        },
        schema=_SPILL_SCHEMA,
    )


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


# --------------------------------------------------------------------------------------------
# The work of one batch (runs in worker processes / Ray actors)


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
_SET_UP: dict[str, tuple[dict[str, Any], Step]] = {}


def _set_up(spec: StepSpec, context: StepContext) -> Step:
    params, step = _SET_UP.get(spec.name, (None, None))
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


# --------------------------------------------------------------------------------------------
# Engines: yield (unit index, BatchResult) in input order


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


def _worker_init() -> None:
    # Each worker is one core's worth: no nested thread pools fighting over the same cores.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# Threads that are safe across fork: jemalloc (pyarrow's allocator, which starts a purging thread
# when imported) takes its locks in its own pthread_atfork handlers and restarts the thread in the
# child when needed.
_FORK_SAFE_THREADS = frozenset({"jemalloc_bg_thd"})


def _single_threaded() -> bool:
    """Whether this process runs no thread besides the main one and _FORK_SAFE_THREADS, native
    threads included (Linux; elsewhere the answer is no)."""
    try:
        tasks = os.listdir("/proc/self/task")
        names = []
        for t in tasks:
            with open(f"/proc/self/task/{t}/comm") as fh:
                names.append(fh.read().strip())
    except OSError:
        return False
    main = str(os.getpid())
    return main in tasks and all(n in _FORK_SAFE_THREADS for t, n in zip(tasks, names) if t != main)


def _run_unit(args: tuple, unit_and_size: tuple[Unit, int]) -> list[BatchResult]:
    """A whole input file, read by the worker itself, in batches. Only for a segment that spills
    its survivors: what comes back is counts and rejects, not the records."""
    unit, size = unit_and_size
    return [_run_batch(args, batch) for batch in batches(iter_unit(unit), size)]


def _run_part(args: tuple, part: str) -> BatchResult:
    """One spill part, read by the worker itself (the driver sends only its name)."""
    return _run_batch(args, list(read_spill(part)))


def _run_batch(args: tuple, items: list[Item]) -> BatchResult:
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

    sys.meta_path.insert(0, NoPandasYet)  # type: ignore[arg-type]
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(NoPandasYet)  # type: ignore[arg-type]


class LocalEngine:
    name = "local"

    def __init__(self, workers: int | None, batch_size: int) -> None:
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.batch_size = batch_size
        self._pool: Any = None

    def start(self) -> None:
        """Start the worker processes (before any progress bar starts a thread)."""
        if self.workers == 1 or self._pool is not None:
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # fork when this process has no other thread: the workers start at once, with the steps
        # the driver already set up (a spawned worker spends ~1 s of CPU importing and setting
        # up). spawn otherwise: threads (torch, tokenizers, Ray) may hold locks that a forked
        # child would wait on forever.
        method = "fork" if _single_threaded() else "spawn"
        self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context(method), initializer=_worker_init)
        # The first task makes the pool start its processes (a fork pool starts all of them,
        # then its own threads). Frozen, the objects a forked worker inherits are left alone by
        # its garbage collector, which would otherwise touch (and so copy) every page of them.
        import gc

        ours = gc.get_freeze_count() == 0  # a caller's own frozen objects stay frozen
        if ours:
            gc.freeze()
        try:
            self._pool.submit(os.getpid).result()
        finally:
            if ours:
                gc.unfreeze()

    def run(self, worker_args: tuple, units: list[Unit]) -> Iterator[tuple[int, BatchResult]]:
        if self.workers == 1:
            worker = SegmentWorker(*worker_args)
            for unit in units:
                for batch in batches(iter_unit(unit), self.batch_size):
                    yield unit.index, worker.run(batch)
            return
        self.start()
        window: deque = deque()
        # With enough input files to go round and a segment that spills (so results are small),
        # each worker reads whole input files: the driver does not decompress, split or send them.
        whole_units = worker_args[1].prepare_for is not None and len(units) >= 2 * self.workers

        def tasks(unit: Unit) -> Iterator[tuple[Any, Any]]:
            if unit.kind == "spill":  # a part per task, read by the worker
                for part in spill_parts(unit.path):
                    yield _run_part, str(part)
            elif whole_units:
                yield _run_unit, (unit, self.batch_size)
            else:
                for batch in batches(iter_unit(unit), self.batch_size):
                    yield _run_batch, batch

        def results(idx: int, fut: Any) -> Iterator[tuple[int, BatchResult]]:
            res = fut.result()
            for r in res if isinstance(res, list) else [res]:
                yield idx, r

        try:
            for unit in units:
                for fn, arg in tasks(unit):
                    window.append((unit.index, self._pool.submit(fn, worker_args, arg)))
                    if len(window) >= 2 * self.workers:
                        yield from results(*window.popleft())
            while window:
                yield from results(*window.popleft())
        except BaseException:
            for _, fut in window:
                fut.cancel()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _ray_read(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    unit = pickle.loads(row["unit"])
    for item in iter_unit(unit):
        yield {"unit": unit.index, "item": pickle.dumps(item, protocol=5)}


_ERROR_UNIT = -1


class _RaySegment:
    """Ray Data actor: one SegmentWorker per actor, fed batches of pickled items."""

    def __init__(self, worker_args: tuple) -> None:
        _worker_init()
        self.worker = SegmentWorker(*worker_args)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        units = [int(u) for u in batch["unit"]]
        items = [pickle.loads(b) for b in batch["item"]]
        out_units, out = [], []
        start = 0
        try:
            # A Ray batch may straddle two units; results are kept per unit, in order.
            for i in range(1, len(units) + 1):
                if i == len(units) or units[i] != units[start]:
                    out_units.append(units[start])
                    out.append(pickle.dumps(self.worker.run(items[start:i]), protocol=5))
                    start = i
        except SantaError as exc:
            # The user's error travels as data: raised, Ray would wrap it in its own exceptions
            # (and retry the task) before the driver saw the message.
            out_units, out = [_ERROR_UNIT], [pickle.dumps(exc)]
        return {"unit": np.array(out_units, dtype=np.int64), "result": np.array(out, dtype=object)}


class RayEngine:
    name = "ray"

    def __init__(self, address: str | None, num_cpus: int | None, batch_size: int) -> None:
        self.address, self.num_cpus, self.batch_size = address, num_cpus, batch_size
        self._started = False

    def _init(self) -> int:
        try:
            import ray
        except ImportError as exc:
            raise PipelineError(
                "engine=ray needs Ray Data: pip install -c constraints.txt 'ray[data]' (or santa[data])"
            ) from exc
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = self.num_cpus or os.cpu_count() or 1
            os.environ.setdefault("RAY_DEDUP_LOGS", "0")
            ray.init(**kwargs)
            self._started = True
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def start(self) -> None:
        """Ray starts its actors per segment."""

    def run(self, worker_args: tuple, units: list[Unit]) -> Iterator[tuple[int, BatchResult]]:
        if not units:
            return
        cpus = self._init()
        import ray

        # The decisions travel as their file's path, as on the local engine: every actor maps the
        # same file (the output directory, where the actors also write their spill parts, is on
        # storage every node sees).
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # results per unit, in input order
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"unit": pickle.dumps(u)} for u in units], override_num_blocks=len(units))
        # One actor per CPU, each asking a little less than a CPU so that the reading tasks
        # always find room: actors holding every CPU would starve the reads and stall the run.
        ds = ds.flat_map(_ray_read, num_cpus=0.25)
        ds = ds.map_batches(
            _RaySegment,
            fn_constructor_args=(worker_args,),
            batch_size=self.batch_size,
            batch_format="numpy",
            concurrency=cpus,
            num_cpus=max(0.1, (cpus - 0.5) / cpus),
        )
        for row in ds.iter_rows():
            result = pickle.loads(row["result"])
            if int(row["unit"]) == _ERROR_UNIT:
                raise result
            yield int(row["unit"]), result

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


# --------------------------------------------------------------------------------------------
# Per-unit outputs and markers


class UnitWriter:
    """Collects one unit's batch results; writes its files, then its marker (counts) last."""

    def __init__(self, work: Path, segment: Segment, unit: int, last: bool) -> None:
        self.work, self.segment, self.unit, self.last = work, segment, unit, last
        self.tag = f"s{segment.index}-u{unit:05d}"
        for stale in self._dir().glob(f"{self.tag}.*"):  # leftovers of an interrupted attempt
            if stale.is_file():  # (its spill directory was emptied before the segment started)
                stale.unlink()
        self.marker_counts: dict[str, dict[str, list[int]]] = {}
        self.stats: dict[str, dict[str, list[float]]] = {}
        self.notes: dict[str, Counter] = {}
        self.errors: list[str] = []
        self.files: dict[str, list[str]] = {"data": [], "rejects": [], "annotations": []}
        self.buffers: dict[str, list[pa.Table]] = {"data": [], "rejects": [], "annotations": []}
        self.buffer_bytes = 0
        self.kept = 0

    def _dir(self) -> Path:
        return self.work / "units"

    def add(self, res: BatchResult) -> None:
        for step, langs in res.counts.items():
            mine = self.marker_counts.setdefault(step, {})
            for lang, c in langs.items():
                m = mine.setdefault(lang, [0, 0, 0, 0])
                for i in range(4):
                    m[i] += c[i]
        for step, langs in res.stats.items():
            for lang, values in langs.items():
                self.stats.setdefault(step, {}).setdefault(lang, []).extend(values)
        for step, notes in res.notes.items():
            self.notes.setdefault(step, Counter()).update(notes)
        self.errors.extend(res.errors)
        self.kept += res.n_kept
        if res.kept is not None:  # the last segment's clean rows (the others are spilled by the workers)
            self.buffers["data"].append(res.kept)
            self.buffer_bytes += res.kept.nbytes
        for kind, table in res.tables.items():
            self.buffers[kind].append(table)
            self.buffer_bytes += table.nbytes
        if (
            self.buffer_bytes >= _FLUSH_BYTES
            or max(sum(t.num_rows for t in b) for b in self.buffers.values()) >= _FLUSH_ROWS
        ):
            self._flush()

    def _write(self, kind: str, table: pa.Table) -> None:
        name = f"{self.tag}.{kind}-{len(self.files[kind]):03d}.parquet"
        write_table(self._dir() / name, table)
        self.files[kind].append(name)

    def _flush(self) -> None:
        for kind, tables in self.buffers.items():
            if not tables:
                continue
            try:
                merged = [pa.concat_tables(tables, promote_options="permissive")]
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                merged = tables  # a field of different types in two batches: one file each
            for table in merged:
                self._write(kind, table)
            self.buffers[kind] = []
        self.buffer_bytes = 0

    def finish(self) -> dict[str, Any]:
        self._flush()
        # The workers wrote the survivors' parts; the marker, written last, vouches for them.
        spill = spill_dir(self._dir(), self.segment.index, self.unit).name if self.kept and not self.last else None
        marker = {
            "segment": self.segment.index,
            "unit": self.unit,
            "kept": self.kept,
            "spill": spill,
            "files": self.files,
            "counts": self.marker_counts,
            "stats": self.stats,
            "notes": {k: dict(v) for k, v in self.notes.items()},
            "errors": self.errors,
        }
        write_json(self._dir() / f"{self.tag}.done.json", marker)
        return marker

    def abort(self) -> None:
        """Nothing to undo: a unit without a marker is done again, its spill directory emptied first."""


def load_marker(work: Path, segment: int, unit: int) -> dict[str, Any] | None:
    path = work / "units" / f"s{segment}-u{unit:05d}.done.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _compact(marker: dict[str, Any] | None) -> dict[str, Any] | None:
    """A marker whose statistics (one per file per step) are flat arrays of doubles: 8 bytes a
    value where a list of Python floats costs 32, for every marker the report reads at once."""
    if marker is not None:
        from array import array

        marker["stats"] = {
            step: {lang: array("d", v) for lang, v in langs.items()} for step, langs in marker["stats"].items()
        }
    return marker


# --------------------------------------------------------------------------------------------
# Corpus steps over the spill


class SpilledRecords:
    """Every record that reached a corpus step, read back from the spill files; re-iterable.

    ``content=False`` (a step whose ``reads_content`` is False) yields records of only their id,
    ``_where``, lang, repo, path and ``_prepared``, without unpacking them; :meth:`select` gives
    whole records of chosen ids. ``scratch``: a directory the step may write temporary files to."""

    _LIGHT = ("id", "where", "lang", "repo", "path", "prepared")

    def __init__(self, paths: list[Path], content: bool = True, scratch: Path | None = None) -> None:
        self.paths = paths
        self.content = content
        self.scratch = scratch

    def _batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        for p in self.paths:
            pf = pq.ParquetFile(p, pre_buffer=False)
            yield from pf.iter_batches(batch_size=1024, columns=columns, use_threads=False)

    @staticmethod
    def _records(batch: pa.RecordBatch, content: bool) -> Iterator[Record]:
        cols = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        for j in range(batch.num_rows):
            if content:
                rec = unpack_record(cols["record"][j])
            else:
                rec = {
                    "id": cols["id"][j],
                    "_where": cols["where"][j],
                    "lang": cols["lang"][j],
                    "repo": cols["repo"][j],
                    "path": cols["path"][j],
                }
            p = cols["prepared"][j]
            if p is not None:
                rec["_prepared"] = pickle.loads(p)
            yield rec

    def __iter__(self) -> Iterator[Record]:
        columns = [*self._LIGHT] + ["record"] * self.content
        for batch in self._batches(columns):
            yield from self._records(batch, self.content)

    def select(self, ids: Any, content: bool = True) -> Iterator[Record]:
        """The records of the given ids (in spill order), whole unless ``content=False``; the
        others are not unpacked."""
        import numpy as np

        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        for batch in self._batches([*self._LIGHT] + ["record"] * content):
            mask = np.isin(batch.column(0).to_numpy(), wanted)
            if mask.any():
                yield from self._records(batch.filter(pa.array(mask)), content)

    def locations(self, ids: Any) -> tuple[Any, list[Any], list[Any]]:
        """(sorted ids, their repos, their paths) of the given ids that are in the spill."""
        import numpy as np

        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        parts = []
        for batch in self._batches(["id", "repo", "path"]):
            mask = np.isin(batch.column(0).to_numpy(), wanted)
            if mask.any():
                parts.append(batch.filter(pa.array(mask)))
        if not parts:
            return np.zeros(0, dtype=np.int64), [], []
        t = pa.Table.from_batches(parts)
        order = np.argsort(t.column("id").to_numpy(), kind="stable")
        t = t.take(pa.array(order))
        return t.column("id").to_numpy(), t.column("repo").to_pylist(), t.column("path").to_pylist()

    def __len__(self) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.paths)


# --------------------------------------------------------------------------------------------
# The run


def _input_identity(units: list[Unit]) -> list[tuple[str, str, int, int]]:
    out = []
    for u in units:
        p = Path(u.path)
        if u.kind == "tree":
            files = sorted(f for f in p.rglob("*") if f.is_file())
            out.append(
                (
                    u.kind,
                    str(p.resolve()),
                    sum(f.stat().st_size for f in files),
                    max((int(f.stat().st_mtime) for f in files), default=0),
                )
            )
        else:
            st = p.stat()
            out.append((u.kind, str(p.resolve()), st.st_size, int(st.st_mtime)))
    return out


LOCK = ".lock"


def _check_output(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise PipelineError(f"output {out} exists and is not a directory; choose another output=")
    ours = (out / SUCCESS).exists() or (out / WORK).exists()
    # A lone lock file is what a run that stopped in its steps' set-up leaves: santa's, reusable.
    if not ours and any(p.name != LOCK for p in out.iterdir()):
        raise PipelineError(
            f"output {out} is a non-empty directory that santa did not write (no {SUCCESS} or {WORK}); "
            "choose another output= or empty it"
        )


def _reusable(out: Path, key: str) -> dict[str, Any] | None:
    try:
        success = json.loads((out / SUCCESS).read_text())
        report = json.loads((out / "report.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    if success.get("key") != key or report.get("key") != key:
        return None
    if not all((out / f).is_file() for f in success.get("files", [])):
        return None
    return report


def run_pipeline(cfg: PipelineConfig, console: Console | None = None) -> PipelineResult:
    """Run (or reuse, or resume) the pipeline of ``cfg``; see the module docstring."""
    console = console or Console(stderr=True, soft_wrap=True)
    if cfg.engine not in ("local", "ray"):
        raise PipelineError(f"unknown engine {cfg.engine!r}: use engine=local or engine=ray")
    names = [s.name for s in cfg.steps]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PipelineError(f"pipeline.steps names {dupes} more than once; each step may appear once")
    if INPUT_STEP in names:
        raise PipelineError(f"{INPUT_STEP!r} is the engine's own input check, not a step name")
    out = Path(cfg.output)
    units = resolve_units(cfg.input)
    # Built and set up here first, so a bad parameter, a missing tokenizer or benchmark file
    # fails before any worker starts; corpus steps run here.
    steps = [build_step(s) for s in cfg.steps]
    key = config_key(
        {
            "format": FORMAT,
            "steps": [step_identity(s) for s in steps],
            "inputs": _input_identity(units),
            "max_file_bytes": cfg.max_file_bytes,
            **cfg.key_extra,
        }
    )
    _check_output(out)
    created = not out.exists()
    had_lock = (out / LOCK).exists()
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / LOCK)):
        report = _reusable(out, key)
        if report is not None:
            console.print(f"[bold]pipeline[/bold] {out} is up to date (key {key}); reusing it")
            return PipelineResult(out, report, reused=True)
        try:
            for step in steps:
                step.setup(cfg.context)
        except BaseException:
            # Nothing was written yet: leave the output as it was found (gone, if this run made it).
            if created:
                shutil.rmtree(out, ignore_errors=True)
            elif not had_lock:
                (out / LOCK).unlink(missing_ok=True)
            raise
        segments = plan_segments(steps)
        work = out / WORK / key
        work.mkdir(parents=True, exist_ok=True)
        write_json(
            work / "plan.json",
            {"key": key, "steps": [step_identity(s) for s in steps], "units": [u.__dict__ for u in units]},
        )
        workers = cfg.workers
        if workers is None:  # every core, but no process start-up (~1 s each) for a small input
            size = sum(i[2] for i in _input_identity(units))
            workers = max(1, min(os.cpu_count() or 1, -(-size // _BYTES_PER_WORKER)))
        engine: LocalEngine | RayEngine = (
            LocalEngine(workers, cfg.batch_size)
            if cfg.engine == "local"
            else RayEngine(cfg.ray_address, cfg.ray_num_cpus, cfg.batch_size)
        )
        options = {"max_file_bytes": cfg.max_file_bytes, "strict": cfg.strict, "spill_root": str(work / "units")}
        start = time.perf_counter()
        resumed = 0
        try:
            _SET_UP.update({spec.name: (spec.params, step) for spec, step in zip(cfg.steps, steps)})
            seg_units = units
            dropped_path: str | None = None
            decisions_by_step: dict[str, DecisionTable] = {}
            corpus_seconds: dict[str, float] = {}
            for seg in segments:
                last = seg.prepare_for is None
                markers = {u.index: load_marker(work, seg.index, u.index) for u in seg_units}
                pending = [u for u in seg_units if markers[u.index] is None]
                resumed += len(seg_units) - len(pending)
                if not cfg.keep_work:  # what a run that stopped left: spills already read through
                    for u in seg_units:
                        if markers[u.index] is not None:
                            _drop_spill(u)
                for u in pending:  # parts an interrupted attempt wrote
                    shutil.rmtree(spill_dir(work / "units", seg.index, u.index), ignore_errors=True)
                if pending:
                    args = (cfg.steps, seg, cfg.context, options, dropped_path)
                    _run_segment(
                        engine,
                        args,
                        pending,
                        work,
                        seg,
                        last,
                        markers,
                        console if cfg.progress else None,
                        [INPUT_STEP] * (seg.index == 0) + [seg.after] * (seg.after is not None) + seg.steps,
                        drop_inputs=not cfg.keep_work,
                    )
                if last:
                    break
                spills = [
                    p
                    for m in (markers[u.index] for u in seg_units)
                    if m and m["spill"]
                    for p in spill_parts(work / "units" / m["spill"])
                ]
                name = seg.prepare_for
                assert name is not None
                dropped_path, dropped, secs = _corpus_decisions(
                    work, seg, next(s for s in steps if s.name == name), spills, console
                )
                decisions_by_step[name] = dropped
                corpus_seconds[name] = secs
                # The next segment reads this one's survivors, unit by unit, under the same index.
                seg_units = [
                    Unit(u.index, str(work / "units" / markers[u.index]["spill"]), "spill")
                    for u in seg_units
                    if markers[u.index]["spill"]
                ]  # type: ignore[index]
                # Units with no survivors still need a marker in the next segment.
                for u in units:
                    if all(su.index != u.index for su in seg_units):
                        seg_units.append(Unit(u.index, "", "empty"))
                seg_units.sort(key=lambda u: u.index)
            all_markers = {
                (seg.index, u.index): _compact(load_marker(work, seg.index, u.index)) for seg in segments for u in units
            }
            report = reporting.build(
                key=key,
                cfg=cfg,
                steps=steps,
                segments=segments,
                units=units,
                markers=all_markers,
                decisions=decisions_by_step,
                corpus_seconds=corpus_seconds,
                seconds=time.perf_counter() - start,
                resumed_units=resumed,
                engine=engine.name,
            )
            reporting.publish(out, work, report, segments, units, all_markers, decisions_by_step, console)
        finally:
            engine.close()
            _SET_UP.clear()
        if not cfg.keep_work:
            shutil.rmtree(out / WORK, ignore_errors=True)
        reporting.print_report(report, console)
        return PipelineResult(out, report)


def _drop_spill(unit: Unit) -> None:
    """A segment's input spill, once the unit's marker in that segment is written: everything
    after reads the marker's outputs and the corpus step's saved decisions, never the spill."""
    if unit.kind == "spill":
        shutil.rmtree(unit.path, ignore_errors=True)


def _run_segment(
    engine: LocalEngine | RayEngine,
    args: tuple,
    pending: list[Unit],
    work: Path,
    seg: Segment,
    last: bool,
    markers: dict[int, Any],
    console: Console | None,
    step_names: list[str],
    drop_inputs: bool = True,
) -> None:
    real = [u for u in pending if u.kind != "empty"]
    by_index = {u.index: u for u in pending}
    writer: UnitWriter | None = None
    if real:
        engine.start()
    progress = _StepProgress(console, step_names, seg, len(real))

    def finish(w: UnitWriter) -> None:
        markers[w.unit] = _compact(w.finish())
        if drop_inputs:
            _drop_spill(by_index[w.unit])
        progress.unit_done()

    try:
        with progress:
            for unit_index, res in engine.run(args, real):
                if writer is None or writer.unit != unit_index:
                    if writer is not None:
                        finish(writer)
                    writer = UnitWriter(work, seg, unit_index, last)
                writer.add(res)
                progress.update(res)
            if writer is not None:
                finish(writer)
                writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    for u in pending:  # empty inputs, and units whose records all went before this segment
        if markers.get(u.index) is None:
            markers[u.index] = _compact(UnitWriter(work, seg, u.index, last).finish())


def _corpus_decisions(
    work: Path, seg: Segment, step: Step, spills: list[Path], console: Console
) -> tuple[str, DecisionTable, float]:
    """(path of the saved decisions, the dropped records' decisions, seconds), computed once.

    The decisions (an Arrow file, with the repo and path of each duplicate and of the file it
    duplicates, so that the duplicates report needs no spill) are written last: their presence
    says the step is done."""
    path = work / f"corpus-s{seg.index}-{step.name}.arrow"
    seconds_path = path.with_suffix(".json")
    if path.is_file():
        return str(path), DecisionTable.load(path), json.loads(seconds_path.read_text())["seconds"]
    assert isinstance(step, CorpusStep)
    records = SpilledRecords(spills, content=step.reads_content, scratch=work)
    t0 = time.perf_counter()
    with console.status(f"[bold]{step.name}[/bold] over {len(records):,} files"):
        try:
            decisions = step.process_corpus(records)
        except SantaError as exc:
            raise PipelineError(f"step {step.name!r}: {exc}") from exc
    table = DecisionTable.from_mapping(decisions)
    del decisions
    import numpy as np

    ids, dup, _ = table.duplicates()
    table = table.with_locations(*records.locations(np.concatenate([ids, dup])))
    seconds = time.perf_counter() - t0
    write_json(seconds_path, {"seconds": seconds})
    tmp = tmp_name(path)
    try:
        table.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    del table
    return str(path), DecisionTable.load(path), seconds


class _StepProgress:
    """One bar per step of a segment: files read and kept, MB/s."""

    def __init__(self, console: Console | None, steps: list[str], seg: Segment, units: int = 0) -> None:
        self.enabled = console is not None and console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description:<14}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[read]:>9,} read {task.fields[kept]:>9,} kept  {task.fields[rate]:6.1f} MB/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not self.enabled,
        )
        # The whole segment's bar: input files (units) done of all, which gives the ETA.
        self.units = self.progress.add_task("input files", total=units or None, read=0, kept=0, rate=0.0)
        self.tasks = {s: self.progress.add_task(s, total=None, read=0, kept=0, rate=0.0) for s in steps}
        self.totals = {s: [0, 0, 0] for s in steps}
        self.t0 = time.perf_counter()

    def __enter__(self) -> _StepProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def unit_done(self) -> None:
        self.progress.advance(self.units)

    def update(self, res: BatchResult) -> None:
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        for step, langs in res.counts.items():
            if step not in self.tasks:
                continue
            t = self.totals[step]
            for c in langs.values():
                t[0] += c[0]
                t[1] += c[0] - c[2]
                t[2] += c[1]
            self.progress.update(self.tasks[step], read=t[0], kept=t[1], rate=t[2] / 1e6 / elapsed)
