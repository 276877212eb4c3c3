"""Shared by the Hydra entry points: user errors print one clear message and exit 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from santa.errors import SantaError, print_error
from santa.sweep.job import multirun_job


# The user errors of this process's Hydra multirun jobs, as (job, first line of the error). In a
# multirun a job's user error ends that job, not the sweep: Hydra goes on with the next job (as it
# does for any exception of a job), and SweepErrors reports them all at the end and exits 2.
_FAILED_JOBS: list[tuple[str, str]] = []


def run_guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (SantaError, FileNotFoundError) as exc:
        print_error(exc)
        hc = multirun_job()
        if hc is None:
            sys.exit(2)
        _FAILED_JOBS.append((f"#{hc.job.num} {hc.runtime.output_dir}", str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
        return None


class SweepErrors(Callback):
    """Hydra callback (``hydra.callbacks`` of conf/train.yaml and conf/evaluate.yaml): at the end of
    a multirun, the jobs that stopped on a user error, one line each, and exit status 2."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _FAILED_JOBS.clear()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not _FAILED_JOBS:
            return
        console = Console(stderr=True, soft_wrap=True)
        console.print(f"[bold red]error:[/bold red] {len(_FAILED_JOBS)} job(s) of the sweep failed (the others ran "
                      "to their end; a job's overrides are in <job dir>/.hydra/overrides.yaml):", highlight=False)
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
