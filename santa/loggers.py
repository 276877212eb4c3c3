"""Lightning's loggers with santa's two fixes: a resumed run appends to its metrics.csv, and W&B
runs start without a deprecated setting's warning."""

from __future__ import annotations

import csv
from typing import Any

from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    """Lightning's writer deletes an existing metrics.csv (each resume would erase the attempts
    before it); this one appends to it, taking its header as the columns so far."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as fh:
                header = next(csv.reader(fh), [])
            self.metrics_keys = sorted(k for k in header if k)


class CSVLogger(_LightningCSVLogger):
    """Lightning's CSVLogger (same arguments and files), except that ``metrics.csv`` is appended
    to when the run directory already has one: every attempt of a resumed run keeps its rows."""

    @property
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment  # type: ignore[return-value]


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger (same arguments), without the ``anonymous=None`` it always passes to
    ``wandb.init``: wandb >= 0.19 warns on every run that the setting has no effect."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
