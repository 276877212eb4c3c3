"""Evaluate a finished training run the way a user would: ``python evaluate.py -m benchmark=...``.

Each entry of ``cfg.evaluation.runs`` is one evaluate.py multirun over its benchmarks with its
overrides (a generation preset, a sample count, a problem limit), writing ``<run_dir>/eval/<name>/``.
A child process keeps Hydra's global state, the generation model and the sandboxes out of the
training process (which may still hold a process group), and is the same code path a user runs by
hand. evaluate.py caches generations and executions per output directory, so rerunning a job
resumes its evaluation where it stopped.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from santa.errors import RunInterrupted, SantaError
from santa.signals import PARENT_ENV, signal_of, stop_on_signals

EVAL_DIR = "eval"


class JobEvaluationError(SantaError, RuntimeError):
    """evaluate.py failed for a benchmark of this job."""


def planned_benchmarks(cfg: DictConfig) -> list[str]:
    runs = cfg.get("evaluation", {}).get("runs") or {}
    return [str(b) for spec in runs.values() for b in spec.benchmarks]


def command(spec: DictConfig, run_dir: Path, cfg: DictConfig) -> list[str]:
    benchmarks = [str(b) for b in spec.benchmarks]
    cmd = [
        # The installed santa's own evaluation app (configs from the package): no checkout needed.
        sys.executable,
        "-m",
        "santa",
        "evaluate",
        "-m",
        f"benchmark={','.join(benchmarks)}",
        f"model.path={run_dir.resolve()}",
        f"hydra.sweep.dir={(run_dir / EVAL_DIR).resolve()}",
        "hydra.sweep.subdir=${benchmark.name}",
        f"seed={int(cfg.seed)}",
        f"progress={'true' if cfg.trainer.get('enable_progress_bar', True) else 'false'}",
    ]
    if cfg.get("benchmark_data"):
        cmd.append(f"data_dir={Path(str(cfg.benchmark_data)).resolve()}")
    cmd += [str(o) for o in (spec.get("overrides") or [])]
    return cmd


def evaluate_run(
    cfg: DictConfig, run_dir: Path, on_done: Callable[[str, dict[str, Any]], None] | None = None
) -> dict[str, dict[str, Any]]:
    """Run every configured evaluation of ``run_dir``; return benchmark -> results.json content.
    ``on_done(benchmark, results)`` is called as each benchmark's results appear."""
    runs = cfg.get("evaluation", {}).get("runs") or {}
    out: dict[str, dict[str, Any]] = {}
    for name, spec in runs.items():
        if not spec.get("benchmarks"):
            continue
        cmd = command(spec, run_dir, cfg)
        proc = _run_to_the_end(cmd, f"evaluation `{name}` of {run_dir}")
        missing = []
        for bench in spec.benchmarks:
            path = run_dir / EVAL_DIR / str(bench) / "results.json"
            if not path.is_file():
                missing.append(str(bench))
                continue
            results = json.loads(path.read_text())
            out[str(bench)] = results
            if on_done:
                on_done(str(bench), results)
        if proc.returncode != 0 or missing:
            shown = " ".join(c if " " not in c else repr(c) for c in cmd[1:])
            raise JobEvaluationError(
                f"evaluation `{name}` of {run_dir} failed (exit {proc.returncode}"
                + (f"; no results for {', '.join(missing)}" if missing else "")
                + f"): rerun `python {shown}` to see why; it resumes where it stopped"
            )
    return out


def _run_to_the_end(cmd: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    """Run evaluate.py and wait for it; a SIGTERM or SIGINT of this process is passed on to it
    (its own session: a terminal's Ctrl-C reaches it once, from here), so it stops its sandboxes
    and keeps its caches before this process stops: no evaluation goes on without its job."""
    proc: subprocess.Popen[bytes] | None = None
    try:
        with stop_on_signals(repeat="ignore"):
            try:
                # Its own session; and if this process dies by SIGKILL, passing nothing on, the
                # child gets SIGTERM from the kernel (santa.signals.stop_with_parent_from_env).
                env = {**os.environ, PARENT_ENV: str(os.getpid())}
                proc = subprocess.Popen(cmd, start_new_session=True, env=env)
                return subprocess.CompletedProcess(cmd, proc.wait())
            except KeyboardInterrupt as exc:
                signum = signal_of(exc)
                if proc is not None:
                    proc.send_signal(signum)
                    proc.wait()
        shown = " ".join(shlex.quote(c) for c in ["python", *cmd[1:]])
        raise RunInterrupted(
            f"{signal.Signals(signum).name}: {what} stopped; the model is saved and the evaluation's caches "
            f"are kept. Resume the evaluation with: {shown}",
            signum,
        )
    finally:
        if proc is not None and proc.poll() is None:  # a second signal while it stopped: leave nothing
            proc.kill()
            proc.wait()


def scores_for_logger(benchmark: str, results: dict[str, Any]) -> dict[str, float]:
    """eval/<benchmark>/<metric> for the training run's logger (skipped benchmarks log nothing)."""
    return {
        f"eval/{benchmark}/{metric}": float(value)
        for metric, value in (results.get("scores") or {}).items()
        if isinstance(value, (int, float))
    }
