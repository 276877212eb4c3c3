"""Shared by the Hydra entry points: user errors print one clear message and exit 2."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from santa.errors import RunInterrupted, RunRefused, SantaError, print_error
from santa.runs import multirun_job
from santa.signals import ignore_signals

# The user errors of this process's Hydra multirun jobs, as (job, first line of the error). In a
# multirun a job's user error ends that job, not the sweep: Hydra goes on with the next job (as it
# does for any exception of a job), and SweepErrors reports them all at the end and exits 2.
_FAILED_JOBS: list[tuple[str, str]] = []


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_third_party_output() -> None:
    """What a santa run prints from its libraries: Lightning's records once (through Hydra's
    handlers, not also through Lightning's own), and no advertisement for another logger."""
    if logging.getLogger().handlers:  # Hydra configured the root logger
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            lg = logging.getLogger(name)
            for h in list(lg.handlers):
                if type(h) is logging.StreamHandler:
                    lg.removeHandler(h)
            lg.propagate = True
    tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoTips) for f in tips.filters):
        tips.addFilter(_NoTips())


_TASK_STARTED = False


def run_app(hydra_main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` function with santa's exit codes: Hydra exits 1 for a config error
    (a bad override, an unknown config group), which is the user's to fix, so santa says 2 there,
    as for its own user errors; 1 stays for a crash."""
    try:
        hydra_main()
    except SystemExit as exc:
        if exc.code == 1 and not _TASK_STARTED:
            raise SystemExit(2) from None
        raise
    except KeyboardInterrupt:
        print_error(SantaError("interrupted (Ctrl-C)"))
        raise SystemExit(130) from None


def run_guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    global _TASK_STARTED
    _TASK_STARTED = True
    quiet_third_party_output()
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        # Ctrl-C outside training (data stages, evaluation): one line, no traceback. The stages
        # write to temporary names, so nothing half-done is left behind.
        print_error(
            SantaError(
                "interrupted (Ctrl-C); the stages finished so far are cached, rerun the same command to continue"
            )
        )
        sys.exit(130)
    except (SantaError, FileNotFoundError) as exc:
        if isinstance(exc, RunInterrupted):
            ignore_signals()  # this process exits with the interruption's status, whatever comes
        print_error(exc)
        if not isinstance(exc, RunInterrupted):
            # An interrupted run keeps its directory: it holds what the resume continues from
            # (an evaluation's caches, in a timestamped folder that a checkpoint does not mark).
            _tidy_run_dir(exc)
        hc = multirun_job()
        if hc is None or isinstance(exc, RunInterrupted):
            sys.exit(getattr(exc, "exit_code", 2))
        _FAILED_JOBS.append(
            (f"#{hc.job.num} {hc.runtime.output_dir}", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        )
        return None


# What each run directory held before Hydra wrote into it (None: it did not exist), taken by the
# RunDirGuard callback, so that a run refused before it began leaves the directory as it found it.
_BEFORE: dict[Path, dict[str, Any] | None] = {}
_HYDRA_LOG_SUFFIX = ".log"


def _snapshot(run_dir: Path) -> dict[str, Any] | None:
    if not run_dir.is_dir():
        return None
    hydra_dir = run_dir / ".hydra"
    return {
        "hydra": {p.name: p.read_bytes() for p in hydra_dir.iterdir() if p.is_file()} if hydra_dir.is_dir() else None,
        "logs": {p.name: p.stat().st_size for p in run_dir.glob(f"*{_HYDRA_LOG_SUFFIX}") if p.is_file()},
    }


def _current_run_dir() -> Path | None:
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:
        return None
    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir).resolve()


def _tidy_run_dir(exc: BaseException) -> None:
    """After a user error: the timestamped run directory Hydra made for this invocation, holding no
    checkpoint, is removed (a typo leaves no outputs/<date>/<time>/ behind); a directory that
    existed before is restored to what it was when the error came before the run touched it
    (:class:`RunRefused`)."""
    run_dir = _current_run_dir()
    if run_dir is None or run_dir not in _BEFORE:
        return
    before = _BEFORE[run_dir]
    if before is None:
        # Only Hydra's own timestamped folder of a single run (a sweep records no new job folder):
        # a folder the user named keeps the job.json that records the failure.
        if _run_dir_was_chosen():
            return
        if run_dir.is_dir() and not (run_dir / "checkpoints").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
            # And the empty date folder above it (outputs/<date>/), up to the working directory.
            cwd, parent = Path.cwd().resolve(), run_dir.parent
            while parent != cwd and cwd in parent.parents and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        return
    if not isinstance(exc, RunRefused):
        return
    hydra_dir = run_dir / ".hydra"
    if before["hydra"] is None:
        shutil.rmtree(hydra_dir, ignore_errors=True)
    else:
        for p in hydra_dir.iterdir():
            if p.is_file() and p.name not in before["hydra"]:
                p.unlink()
        for name, data in before["hydra"].items():
            (hydra_dir / name).write_bytes(data)
    for p in run_dir.glob(f"*{_HYDRA_LOG_SUFFIX}"):
        if p.name not in before["logs"]:
            p.unlink()
        elif p.stat().st_size != before["logs"][p.name]:
            with open(p, "r+b") as fh:
                fh.truncate(before["logs"][p.name])


def _run_dir_was_chosen() -> bool:
    from hydra.core.hydra_config import HydraConfig

    return any(o.split("=", 1)[0].lstrip("+~") == "hydra.run.dir" for o in HydraConfig.get().overrides.hydra)


class RunDirGuard(Callback):
    """Hydra callback (``hydra.callbacks`` of conf/train.yaml and conf/evaluate.yaml): records what
    the run directory (or each job directory of a sweep) held before Hydra writes its
    ``.hydra/`` files there, for :func:`run_guarded` to put back."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(str(config.hydra.run.dir)).resolve()
        _BEFORE[run_dir] = _snapshot(run_dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # The job directories a rerun of the sweep resumes in (ckpt_path=auto); a job directory
        # the sweep creates is not recorded, and a job folder is never removed (see _tidy_run_dir).
        sweep = Path(str(config.hydra.sweep.dir)).resolve()
        _BEFORE.clear()
        if sweep.is_dir():
            for d in sweep.iterdir():
                if d.is_dir():
                    _BEFORE[d.resolve()] = _snapshot(d)


class SweepErrors(Callback):
    """Hydra callback (``hydra.callbacks`` of conf/train.yaml and conf/evaluate.yaml): at the end of
    a multirun, the jobs that stopped on a user error, one line each, and exit status 2."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _FAILED_JOBS.clear()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not _FAILED_JOBS:
            return
        console = Console(stderr=True, soft_wrap=True)
        console.print(
            f"[bold red]error:[/bold red] {len(_FAILED_JOBS)} job(s) of the sweep failed (the others ran "
            "to their end; a job's overrides are in <job dir>/.hydra/overrides.yaml):",
            highlight=False,
        )
        for job, error in _FAILED_JOBS:
            console.print(f"  job {job}: {error}", highlight=False, markup=False)
        sys.exit(2)


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("santa.wandb_offline"):
        # Offline unless the user configured W&B otherwise (WANDB_MODE=online, or an API key set
        # without WANDB_MODE): no account and no network must be needed.
        def wandb_offline() -> bool:
            mode = os.environ.get("WANDB_MODE", "").lower()
            if mode in ("online", "run"):
                return False
            if mode in ("offline", "dryrun", "disabled"):
                return True
            return not os.environ.get("WANDB_API_KEY")

        OmegaConf.register_new_resolver("santa.wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("santa.first"):
        # ${santa.first:${output},outputs/eval/...}: the first value that is set (oc.select gives
        # the null of a key that exists, so `output: null` would not fall back).
        OmegaConf.register_new_resolver("santa.first", lambda *xs: next((x for x in xs if x not in (None, "")), None))
    if not OmegaConf.has_resolver("santa.mul"):
        # ${santa.mul:${scale.steps},${scale.steps_factor}}: `final` trains twice as long.
        OmegaConf.register_new_resolver("santa.mul", lambda a, b: int(a) * int(b))


_register_resolvers()
