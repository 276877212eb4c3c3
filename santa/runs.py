"""Run bookkeeping: the state of one training or evaluation run on disk, ``<run_dir>/job.json``,
rewritten atomically at each change, so ``santa report`` can tell finished, running, crashed and
failed jobs apart while a sweep runs; and where a run sits in a Hydra multirun (its W&B group).

Training, evaluation after training and the launcher all use it, inside a sweep or not, so it
lives beside them rather than in ``santa.sweep`` (the report of a whole sweep)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

SCHEMA = "santa-job/1"
JOB_FILE = "job.json"
STATES = ("preparing", "training", "evaluating", "finished", "failed", "interrupted")


class JobRecord:
    def __init__(self, run_dir: Path, **fields: Any) -> None:
        self.path = Path(run_dir) / JOB_FILE
        previous = read_job(run_dir) or {}
        self.data: dict[str, Any] = {
            "schema": SCHEMA,
            "experiment": None,
            "state": "preparing",
            "error": None,
            "scale": None,
            "pipeline": {"name": None, "report": None},
            "benchmarks": [],
            # A resumed job keeps the evaluations an earlier attempt finished.
            "evaluation": dict(previous.get("evaluation") or {}),
            "global_step": 0,
            "max_steps": None,
            "train": {},
        }
        self.update(**fields)

    def update(self, **fields: Any) -> None:
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"job state {fields['state']!r} is not one of {STATES}")
        self.data.update(fields, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"), pid=os.getpid())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{JOB_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        os.replace(tmp, self.path)


def read_job(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / JOB_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def multirun_job() -> Any | None:
    """The Hydra config of the current job when it runs inside a multirun, else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:
        return None
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return hc if hc.mode == RunMode.MULTIRUN else None


def sweep_group(prefix: str = "") -> str | None:
    """The W&B group of a Hydra multirun job: the sweep directory's last two parts (the default
    layout's date/time), so every job of one sweep lands in one group; None outside a multirun."""
    hc = multirun_job()
    return None if hc is None else prefix + "_".join(Path(hc.sweep.dir).parts[-2:])


def run_as_santa(app: str) -> bool:
    """Whether this process is ``santa <app>`` (also ``python -m santa <app>``): santa's main hands
    Hydra ``sys.argv[0] = "<santa> <app>"``; otherwise it is the checkout's ``<app>.py``. A
    command printed for the user to rerun starts the same way."""
    return bool(sys.argv) and sys.argv[0].endswith(f" {app}")
