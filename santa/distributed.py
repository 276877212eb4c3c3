"""Lightning's multi-process strategies, made safe inside a Hydra multirun.

Lightning starts ranks 1..N-1 by re-running the script. Under Hydra it re-runs ``sys.argv`` with
``hydra.run.dir=<run dir>`` appended; in a multirun that command still holds ``-m`` and the whole
sweep (``experiment=a,b,c``), so every child would start a sweep of its own, and ``run.dir`` is not
the job's directory. After the first job the launcher also leaves ``LOCAL_RANK``, ``WORLD_SIZE`` and
``MASTER_PORT`` in the parent's environment, so the next job believes its processes were created
externally and waits forever for ranks nobody started, and the default process group of the last
job is still alive.

The strategies here re-run only the current job (its own overrides, in its own output directory),
and on teardown destroy the job's process group and restore the environment: one process group per
sweep job. Outside a multirun they behave exactly like Lightning's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy as _LightningDDP
from lightning.pytorch.strategies import DeepSpeedStrategy as _LightningDeepSpeed
from lightning.pytorch.strategies.launchers.launcher import _Launcher
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from santa.runs import multirun_job

# What Lightning's launcher writes into the launching process's environment.
_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def _single_job_command() -> Iterator[None]:
    """While Lightning builds the children's command: ``sys.argv`` is this job's overrides (no
    ``-m``, no sweep) and Hydra's ``run.dir`` is this job's output directory."""
    hc = multirun_job()
    if hc is None:
        yield
        return
    from omegaconf import read_write

    argv, run_dir = sys.argv, hc.run.dir
    sys.argv = [argv[0], *hc.overrides.task]
    with read_write(hc.run):
        hc.run.dir = hc.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = argv
        with read_write(hc.run):
            hc.run.dir = run_dir


class _JobLauncher(_SubprocessScriptLauncher):
    def _call_children_scripts(self) -> None:
        self.saved_env = {k: os.environ.get(k) for k in _LAUNCH_ENV}
        with _single_job_command():
            super()._call_children_scripts()

    def restore_env(self) -> None:
        for key, value in getattr(self, "saved_env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _OneProcessGroupPerJob:
    """Mixin for Lightning's DDP-family strategies (see the module docstring)."""

    _launcher: _Launcher | None  # Lightning's Strategy attribute, which the mixin replaces

    def _configure_launcher(self) -> None:
        super()._configure_launcher()  # type: ignore[misc]
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = _JobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)  # type: ignore[attr-defined]

    def teardown(self) -> None:
        super().teardown()  # type: ignore[misc]
        launcher = getattr(self, "_launcher", None)
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        if isinstance(launcher, _JobLauncher):
            launcher.restore_env()


class DDPStrategy(_OneProcessGroupPerJob, _LightningDDP):
    """``lightning.pytorch.strategies.DDPStrategy`` that can run several jobs in one process."""


class DeepSpeedStrategy(_OneProcessGroupPerJob, _LightningDeepSpeed):
    """``lightning.pytorch.strategies.DeepSpeedStrategy`` that can run several jobs in one process."""
