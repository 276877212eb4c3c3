"""Execute many programs in parallel sandboxes, with a resumable cache and a progress bar.

    from santa.eval.execution import Job, execute
    results = execute([Job("python", program, key="HumanEval/0", timeout=3.0), ...],
                      workers=8, cache=Path("out/exec_cache.jsonl"))

``results[i]`` belongs to ``jobs[i]``. Identical jobs (same language, program, timeout and limits)
run once. With ``cache``, every finished result is appended to a JSONL file as it arrives, keyed
by a hash of what determines it, so an interrupted evaluation resumes where it stopped; results
with status ``error`` (the sandbox failed, not the program) are never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from santa.eval import keyed_jsonl
from santa.eval.sandbox import (
    DEFAULT_TIMEOUTS,
    SANDBOX_VERSION,
    ExecResult,
    Limits,
    Sandbox,
    check_toolchain,
    normalize_language,
)


@dataclass(frozen=True)
class Job:
    """One program to run. ``key`` names it for people (a task id); it plays no part in caching.
    ``timeout`` None means the language's default (``DEFAULT_TIMEOUTS``)."""

    language: str
    program: str
    key: str = ""
    timeout: float | None = None
    limits: Limits | None = None

    def resolved_timeout(self) -> float:
        lang = normalize_language(self.language)
        return float(self.timeout if self.timeout is not None else DEFAULT_TIMEOUTS[lang])

    def cache_key(self) -> str:
        """Hash of everything that determines the result."""
        lang = normalize_language(self.language)
        t = self.resolved_timeout()
        limits = (self.limits or Limits()).resolved(lang, t)
        blob = json.dumps([SANDBOX_VERSION, lang, t, limits, self.program], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def default_workers() -> int:
    # Runs spend much of their wall time waiting on the kernel (namespace set-up and teardown),
    # so a few more workers than cores keeps the cores busy.
    return max(1, (os.cpu_count() or 1) * 2)


def load_cache(path: Path) -> dict[str, ExecResult]:
    """Results of a cache file; a torn last line (interrupted write) is ignored."""
    found: dict[str, ExecResult] = {}
    for key, row in keyed_jsonl.read(path).items():
        try:
            found[key] = ExecResult.from_dict(row["result"])
        except (ValueError, KeyError, TypeError):
            continue
    return found


def execute(
    jobs: Iterable[Job],
    *,
    workers: int | None = None,
    cache: Path | str | None = None,
    progress: bool = True,
    isolation: str = "auto",
    java_compiler: bool = True,
) -> list[ExecResult]:
    """Run ``jobs`` in sandboxes, ``workers`` at a time (default: twice the cores); return their
    results in the jobs' order. Raises :class:`~santa.eval.sandbox.ToolchainMissing` before
    running anything if a language cannot run here. When it returns, no process of any run is
    left (the supervisor waits for all of them). ``isolation="none"`` is for machines where the
    kernel grants nothing and a caller wants to say so explicitly; "auto" degrades by itself.
    Java programs are compiled by one warm compiler per call, ahead of their runs (see
    :class:`~santa.eval.sandbox.Sandbox`); ``java_compiler=False`` runs ``javac`` in every run.
    """
    jobs = list(jobs)
    for lang in sorted({normalize_language(j.language) for j in jobs}):
        check_toolchain(lang)
    keys = [j.cache_key() for j in jobs]
    cache_path = Path(cache) if cache is not None else None
    done: dict[str, ExecResult] = load_cache(cache_path) if cache_path else {}
    todo: dict[str, Job] = {}
    for k, j in zip(keys, jobs):
        if k not in done and k not in todo:
            todo[k] = j
    if todo:
        _run(
            todo,
            done,
            workers or default_workers(),
            cache_path,
            progress,
            isolation,
            already=len(jobs) - sum(1 for k in keys if k in todo),
            java_compiler=java_compiler,
        )
    return [done[k] for k in keys]


def _run(
    todo: dict[str, Job],
    done: dict[str, ExecResult],
    workers: int,
    cache_path: Path | None,
    progress: bool,
    isolation: str,
    already: int,
    java_compiler: bool = True,
) -> None:
    order = list(todo)
    items = [(todo[k].language, todo[k].program, todo[k].resolved_timeout(), todo[k].limits) for k in order]
    sink = None
    if cache_path is not None:
        sink = keyed_jsonl.open_for_append(cache_path)
    bar = _Progress(len(order), already) if progress else None
    try:
        with Sandbox(workers=workers, isolation=isolation, java_compiler=java_compiler) as sb:
            for i, res in sb.run_many(items):
                k = order[i]
                done[k] = res
                if sink is not None and res.status != "error":
                    sink.write(json.dumps({"key": k, "task": todo[k].key, "result": res.to_dict()}) + "\n")
                    sink.flush()
                if bar is not None:
                    bar.advance(res)
    finally:
        if bar is not None:
            bar.close()
        if sink is not None:
            sink.close()


class _Progress:
    """A rich progress bar with running pass / fail / timeout counts."""

    def __init__(self, total: int, cached: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.counts = {s: 0 for s in ("passed", "failed", "timeout", "error")}
        self.p = Progress(
            TextColumn("[bold]executing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        note = f" ({cached} cached)" if cached else ""
        self.task = self.p.add_task("exec", total=total, counts=note)
        self.cached = note
        self.p.start()

    def advance(self, res: ExecResult) -> None:
        self.counts[res.status] = self.counts.get(res.status, 0) + 1
        text = " ".join(f"{k} {v}" for k, v in self.counts.items() if v) + self.cached
        self.p.update(self.task, advance=1, counts=text)

    def close(self) -> None:
        self.p.stop()
