"""Lightning callbacks of a santa training run: stop on SIGTERM / SIGINT at the next optimizer-step
boundary with a checkpoint of that step, and progress bars that count the whole run's steps (with
a total and an ETA after a resume too)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from rich.progress import TaskID


class GracefulStop(pl.Callback):
    """On SIGTERM (a scheduler's preemption, ``kill``) or SIGINT (Ctrl-C), finish the optimizer step
    under way, save ``<checkpoints>/last.ckpt`` at that step and end the fit; the caller reads
    :attr:`signum` and records the run as interrupted.

    Lightning's own SIGTERM handling raises at the end of whichever micro-batch is running (with
    gradient accumulation, mid-step), and Ctrl-C raises KeyboardInterrupt wherever Python is (in an
    optimizer step, half the parameters updated); both are replaced for the duration of the fit.
    Under DDP the ranks agree through one all-reduce of a flag per step, so they stop at the same step.
    """

    def __init__(self, checkpoint_dir: Path) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        # The signal the fit stopped on (a DDP rank that got none stops on rank 0's: SIGTERM).
        self.signum: int | None = None
        self.checkpoint: Path | None = None
        self._received: int | None = None
        self._previous: dict[int, Any] = {}
        self._step_at_batch_start = -1

    @property
    def interrupted(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def _handler(self, signum: int, frame: Any) -> None:
        if self._received is not None and signum == signal.SIGINT:
            # A second Ctrl-C: the user does not want to wait for the step to end.
            raise KeyboardInterrupt
        self._received = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning registered its SIGTERM handler (in Trainer._run); signals can only be
        # set from the main thread.
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handler)

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._step_at_batch_start = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self._step_at_batch_start:
            return  # inside a gradient accumulation: only stop where a step has been applied
        stop = self._received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        self.signum = self._received if self._received is not None else int(signal.SIGTERM)
        self.checkpoint = self.checkpoint_dir / "last.ckpt"
        trainer.save_checkpoint(self.checkpoint)
        trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def _run_batches(trainer: pl.Trainer) -> int | float:
    # The training stream is one endless epoch: its batches are max_steps x accumulation, and a
    # resumed run continues that epoch's batch index where the checkpoint left it.
    if trainer.max_steps is None or trainer.max_steps < 0:
        return float("inf")
    return trainer.max_steps * trainer.accumulate_grad_batches


class _WholeRunTotal:
    """The bar's total: the whole run's micro-batches (see :func:`_run_batches`)."""

    trainer: pl.Trainer

    @property
    def total_train_batches(self) -> int | float:
        return _run_batches(self.trainer)


class StepsTQDMProgressBar(_WholeRunTotal, TQDMProgressBar):
    """Lightning's tqdm bar over the whole run's micro-batches: Lightning's total counts optimizer
    steps (wrong under accumulation), and a run resumed mid-epoch gets no total at all (its epoch
    start is not replayed); here it starts where the checkpoint left off, with a total and an ETA."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        done = trainer.global_step * trainer.accumulate_grad_batches
        if done:
            bar = self.train_progress_bar
            bar.reset(total=None if self.total_train_batches == float("inf") else int(self.total_train_batches))
            bar.initial = bar.n = done
            bar.set_description(f"Epoch {trainer.current_epoch} (resumed at step {trainer.global_step})")
            bar.refresh()


class StepsRichProgressBar(_WholeRunTotal, RichProgressBar):
    """Lightning's rich bar, with the same total and resume as :class:`StepsTQDMProgressBar`."""

    def _get_train_description(self, current_epoch: int) -> str:
        # Lightning writes "Epoch 0/-2" for a run bounded by steps, not epochs.
        return f"Training to step {self.trainer.max_steps}"

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        done = trainer.global_step * trainer.accumulate_grad_batches
        if done and self.train_progress_bar_id is None and self.progress is not None:
            self.on_train_epoch_start(trainer, pl_module)
            # on_train_epoch_start just added the bar (mypy keeps the `is None` narrowing above).
            self.progress.update(cast(TaskID, self.train_progress_bar_id), completed=done)
