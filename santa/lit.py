"""The LightningModule: wraps santa's plain-torch GPT with the paper's optimisation recipe.

AdamW (0.9, 0.95, eps 1e-8, weight decay 0.1 on weight matrices), linear warmup then cosine decay
stepped once per *applied* optimizer step (an fp16 overflow that skips the step does not advance
the schedule), gradient clipping by the Trainer (or DeepSpeed). Logged: loss, perplexity, lr,
tokens/s, grad norm.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig

from santa.checkpoint import (
    SECTION,
    checkpoint_mismatch,
    restore_rng,
    santa_section,
    saved_skipped_steps,
    saved_tokenizer_json,
)
from santa.model.config import GPTConfig
from santa.model.gpt import GPT


def warmup_cosine(step: int, *, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine to ``min_ratio`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class SantaLM(pl.LightningModule):
    def __init__(
        self,
        model_config: dict[str, Any],
        optim: dict[str, Any],
        *,
        max_steps: int,
        tokens_per_step: int,
        activation_checkpointing: bool = False,
        tokenizer_json: str | None = None,
    ) -> None:
        super().__init__()
        # The tokenizer travels inside the checkpoint so `santa generate x.ckpt` works anywhere.
        self.save_hyperparameters(ignore=["tokenizer_json"])
        self.tokenizer_json = tokenizer_json
        self.config = GPTConfig.from_dict(dict(model_config))
        self.model = GPT(self.config)
        if activation_checkpointing:
            self._enable_activation_checkpointing()
        self._step_started: float | None = None
        self._scale_before_step: float | None = None
        self._last_lr = 0.0
        self.skipped_steps = 0

    def _enable_activation_checkpointing(self) -> None:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
            apply_activation_checkpointing,
        )

        block_type = type(self.model.transformer.h[0])
        apply_activation_checkpointing(self.model, check_fn=lambda m: isinstance(m, block_type))

    # ----------------------------------------------------------------- steps
    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)[0]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, loss = self.model(batch["input_ids"], batch["labels"])
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        self.log("train/ppl", torch.exp(loss.detach()), sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, loss = self.model(batch["input_ids"], batch["labels"])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, on_epoch=True, on_step=False)
        self.log("val/ppl", torch.exp(loss), sync_dist=True, on_epoch=True, on_step=False)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # First micro-batch of an optimizer step: tokens/s covers the step's compute, not the
        # validation or checkpointing that may follow the previous step.
        if self._step_started is None:
            self._step_started = time.perf_counter()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Gradients are unscaled here (AMP) and not yet clipped: the norm the paper's logs show.
        norms = [p.grad.detach().float().norm(2) for p in self.parameters() if p.grad is not None]
        if norms:
            self.log("train/grad_norm", torch.linalg.vector_norm(torch.stack(norms), 2))
        self._last_lr = float(optimizer.param_groups[0]["lr"])
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        self._scale_before_step = float(scaler.get_scale()) if scaler is not None else None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.trainer.fit_loop.epoch_loop._should_accumulate():
            return
        if self._step_started is not None:
            elapsed = max(time.perf_counter() - self._step_started, 1e-9)
            self.log("train/tokens_per_s", self.hparams["tokens_per_step"] / elapsed)
        self._step_started = None
        # The rate the step just used (the scheduler has already moved on to the next one).
        self.log("train/lr", self._last_lr)
        if self.skipped_steps:
            self.log("train/skipped_steps", float(self.skipped_steps))

    # ------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        o = self.hparams["optim"]
        groups = self.model.configure_param_groups(
            weight_decay=float(o["weight_decay"]), decay_embeddings=bool(o.get("decay_embeddings", False))
        )
        optimizer = torch.optim.AdamW(groups, lr=float(o["lr"]), betas=tuple(o["betas"]), eps=float(o["eps"]))
        total = int(self.hparams["max_steps"])
        warmup = int(round(float(o["warmup_fraction"]) * total))
        min_ratio = float(o["min_lr_ratio"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: warmup_cosine(s, total_steps=total, warmup_steps=warmup, min_ratio=min_ratio),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1, "name": "lr"},
        }

    def optimizer_step_was_skipped(self) -> bool:
        """True when the last optimizer step was skipped by an fp16 overflow."""
        engine = getattr(self.trainer.strategy, "deepspeed_engine", None)
        if engine is not None and hasattr(engine, "was_step_applied"):
            return not engine.was_step_applied()
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is not None and self._scale_before_step is not None:
            # GradScaler backs its scale off exactly when it found inf/nan and skipped the step.
            return float(scaler.get_scale()) < self._scale_before_step
        return False

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        if self.optimizer_step_was_skipped():
            self.skipped_steps += 1  # logged in on_train_batch_end (no logging allowed here)
            return
        scheduler.step()

    # ----------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The format is santa.checkpoint's (also read by santa.artifacts and check_resume).
        checkpoint[SECTION] = santa_section(
            model_config=self.config.to_dict(), tokenizer_json=self.tokenizer_json, skipped_steps=self.skipped_steps
        )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        mismatch = checkpoint_mismatch(checkpoint, self.config.to_dict())
        if mismatch is not None:
            raise mismatch
        self.skipped_steps = saved_skipped_steps(checkpoint)
        if self.tokenizer_json is None:
            self.tokenizer_json = saved_tokenizer_json(checkpoint)
        restore_rng(checkpoint)
