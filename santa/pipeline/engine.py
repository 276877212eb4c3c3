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
each corpus step its decisions, so an interrupted run resumes where it stopped. With at least two
units per worker, a worker runs a whole unit and writes its files and marker itself: the driver
receives only markers and touches no record. With fewer (one big input file), the driver reads
the units, sends batches to every worker, and writes their results. The published
outputs appear only when everything is done, ``_SUCCESS`` last.

Between two corpus steps the records never pass through the driver: each worker spills its
batch's survivors itself (a part per batch, records compressed), the next segment's workers read
the parts by name, and a unit's spill is deleted once the next segment's marker for that unit is
written. The corpus steps read only the spill's small columns (ids and prepared values).

Both engines (:mod:`santa.pipeline.engines`) run the same
:class:`~santa.pipeline.worker.SegmentWorker` over the same items (same ids, same batches of one
unit), so they keep the same files. This module is the run loop; the spill format is
:mod:`santa.pipeline.spill`, a unit's outputs and marker :mod:`santa.pipeline.outputs`, what a run
is given and gives back :mod:`santa.pipeline.spec`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from filelock import FileLock
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from santa.cache_key import config_key
from santa.errors import RunInterrupted, SantaError
from santa.filters.base import CorpusStep, DecisionTable, Step
from santa.pipeline import report as reporting
from santa.pipeline.engines import LocalEngine, RayEngine, release_memory
from santa.pipeline.inputs import Unit, resolve_units
from santa.pipeline.outputs import UnitWriter, compact_marker, load_marker
from santa.pipeline.parquet import tmp_name, write_json
from santa.pipeline.plan import FORMAT, INPUT_STEP, SUCCESS, Segment, plan_segments, step_identity
from santa.pipeline.spec import PipelineConfig, PipelineError, PipelineResult, build_step
from santa.pipeline.spill import SpilledRecords, spill_dir, spill_parts
from santa.pipeline.worker import SET_UP, UnitTask, WorkerArgs, _arrow_without_pandas
from santa.signals import deferred, stop_on_signals, stopped_by

WORK = ".santa-work"
# With workers=null the local engine starts one worker per this much input (up to every core).
_BYTES_PER_WORKER = 4 << 20


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
    """Run (or reuse, or resume) the pipeline of ``cfg``; see the module docstring.

    SIGTERM, SIGINT or SIGHUP (in the main thread) stops it: the workers are stopped at once,
    every unit of work they finished stays under ``<output>/.santa-work``, and
    :class:`~santa.errors.RunInterrupted` says to run the same command to resume (exit status
    128 + the signal)."""
    with stop_on_signals():
        try:
            return _run(cfg, console or Console(stderr=True, soft_wrap=True))
        except BaseException as exc:
            signum = stopped_by(exc)
            if signum is None:
                raise
            done = len(list(Path(cfg.output).glob(f"{WORK}/*/units/*.done.json")))
            raise RunInterrupted(
                f"santa prepare stopped by {signal.Signals(signum).name}: {done} unit(s) of work finished "
                f"(an input file through a run of steps) are kept in {Path(cfg.output) / WORK}; run the same "
                "command to resume: it redoes only the rest",
                signum,
            ) from None


def _run(cfg: PipelineConfig, console: Console) -> PipelineResult:
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
        _arrow_without_pandas()  # the driver's tables need no pandas either (~0.4 s of CPU a run)
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
            SET_UP.update({spec.name: (spec.params, step) for spec, step in zip(cfg.steps, steps)})
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
                    args: WorkerArgs = (cfg.steps, seg, cfg.context, options, dropped_path)
                    _run_segment(
                        engine,
                        args,
                        pending,
                        work,
                        seg,
                        last,
                        markers,
                        console if cfg.progress else None,
                        [INPUT_STEP] * (seg.index == 0) + [seg.after or ""] * (seg.after is not None) + seg.steps,
                        drop_inputs=not cfg.keep_work,
                    )
                if last:
                    break
                # Every unit of the segment has its marker now.
                spilled = {u.index: m["spill"] for u in seg_units if (m := markers[u.index]) and m["spill"]}
                spills = [p for name in spilled.values() for p in spill_parts(work / "units" / name)]
                name = seg.prepare_for
                assert name is not None
                dropped_path, dropped, secs = _corpus_decisions(
                    work, seg, next(s for s in steps if s.name == name), spills, console, engine
                )
                decisions_by_step[name] = dropped
                corpus_seconds[name] = secs
                # The next segment reads this one's survivors, unit by unit, under the same index;
                # units with no survivors still need a marker in it.
                seg_units = [
                    Unit(u.index, str(work / "units" / spilled[u.index]), "spill")
                    if u.index in spilled
                    else Unit(u.index, "", "empty")
                    for u in units
                ]
            all_markers = {
                (seg.index, u.index): compact_marker(load_marker(work, seg.index, u.index))
                for seg in segments
                for u in units
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
            release_memory()
            with deferred():  # the outputs are swapped into place whole, never half-way
                reporting.publish(out, work, report, segments, units, all_markers, decisions_by_step, console)
        except BaseException as exc:
            # Stopped by a signal: at once, the workers' tasks cut (their units, without a marker,
            # are redone). Stopped by an error: the other workers finish their tasks first.
            engine.close(abort=stopped_by(exc) is not None)
            raise
        finally:
            engine.close()
            SET_UP.clear()
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
    args: WorkerArgs,
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
    if real:
        engine.start()  # before the progress bar starts a thread (a local pool may fork)
    progress = _StepProgress(console, step_names, seg, len(real))
    if real and engine.whole_units(len(real)):
        # A task per unit: the worker reads it, writes its files and marker; the driver only
        # records the marker (and drops nothing: the worker deleted the unit's input spill).
        # Largest first, so that no worker starts a big unit when the others are finishing (in
        # input order in one process, where nothing waits).
        order = sorted(real, key=_size, reverse=True) if engine.workers > 1 else real
        tasks = [UnitTask(u, engine.batch_size, str(work), drop_inputs) for u in order]
        with progress:
            for marker in engine.run_units(args, tasks):
                markers[marker["unit"]] = marker
                progress.update(marker["counts"])
                progress.unit_done()
    elif real:
        _write_batches(engine, args, real, work, seg, last, markers, progress, by_index, drop_inputs)
    for u in pending:  # empty inputs, and units whose records all went before this segment
        if markers.get(u.index) is None:
            markers[u.index] = compact_marker(UnitWriter(work, seg, u.index, last).finish())


def _size(unit: Unit) -> int:
    """A unit's bytes on disk (a spill's parts together); 0 for a tree or a missing file."""
    path = Path(unit.path)
    try:
        if unit.kind == "spill":
            return sum(p.stat().st_size for p in spill_parts(path))
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


def _write_batches(
    engine: LocalEngine | RayEngine,
    args: WorkerArgs,
    units: list[Unit],
    work: Path,
    seg: Segment,
    last: bool,
    markers: dict[int, Any],
    progress: _StepProgress,
    by_index: dict[int, Unit],
    drop_inputs: bool,
) -> None:
    """Too few units for a task each: a task per batch, and the driver writes each unit's files
    and marker from the batches' results (which come back in input order)."""
    writer: UnitWriter | None = None

    def finish(w: UnitWriter) -> None:
        markers[w.unit] = compact_marker(w.finish())
        if drop_inputs:
            _drop_spill(by_index[w.unit])
        progress.unit_done()

    try:
        with progress:
            for unit_index, res in engine.run(args, units):
                if writer is None or writer.unit != unit_index:
                    if writer is not None:
                        finish(writer)
                    writer = UnitWriter(work, seg, unit_index, last)
                writer.add(res)
                progress.update(res.counts)
            if writer is not None:
                finish(writer)
                writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise


def _corpus_decisions(
    work: Path,
    seg: Segment,
    step: Step,
    spills: list[Path],
    console: Console,
    engine: LocalEngine | RayEngine | None = None,
) -> tuple[str, DecisionTable, float]:
    """(path of the saved decisions, the dropped records' decisions, seconds), computed once.

    The step gets the spilled records as :class:`~santa.filters.base.CorpusParts`: it may run
    its corpus-wide work as tasks on the engine's workers (the local engine's pool, Ray actors),
    which read the spill themselves; the records' locations for the duplicates report are found
    by such tasks too. The decisions (an Arrow file, with the repo and path of each duplicate and
    of the file it duplicates, so that the duplicates report needs no spill) are written last:
    their presence says the step is done."""
    path = work / f"corpus-s{seg.index}-{step.name}.arrow"
    seconds_path = path.with_suffix(".json")
    if path.is_file():
        return str(path), DecisionTable.load(path), json.loads(seconds_path.read_text())["seconds"]
    assert isinstance(step, CorpusStep)
    records = SpilledRecords(spills, content=step.reads_content, scratch=work, engine=engine)
    if engine is not None:
        engine.start()  # before the status line's thread: a local pool then still forks
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

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.__exit__(kind, exc, tb)

    def unit_done(self) -> None:
        self.progress.advance(self.units)

    def update(self, counts: dict[str, dict[str, list[int]]]) -> None:
        """Add a batch's or a unit's counts (step -> language -> [files, bytes, rejected files, ...])."""
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        for step, langs in counts.items():
            if step not in self.tasks:
                continue
            t = self.totals[step]
            for c in langs.values():
                t[0] += c[0]
                t[1] += c[0] - c[2]
                t[2] += c[1]
            self.progress.update(self.tasks[step], read=t[0], kept=t[1], rate=t[2] / 1e6 / elapsed)
