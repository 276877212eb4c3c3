"""santa's checkpoint format: what a Lightning checkpoint of a santa run carries besides
Lightning's own keys. :class:`santa.lit.SantaLM` writes it; resuming (``SantaLM`` itself and
``santa.training.check_resume``, which refuses a wrong file before a run touches anything) and
loading a model to use it (``santa.artifacts``: ``santa generate x.ckpt``, evaluation) read it.
This module is the one place that knows the layout::

    checkpoint["state_dict"]        Lightning's: the GPT's parameters, each name prefixed "model."
    checkpoint["santa"] = {
        "model_config":   GPTConfig.to_dict()
        "tokenizer_json": the tokenizer's full definition (tokenizers JSON) or None, so that a
                          .ckpt file alone can generate, anywhere
        "skipped_steps":  optimizer steps skipped on fp16 overflow (they do not advance the schedule)
        "rng":            {"torch": CPU RNG state, "cuda": per-device states or None}
    }

Checkpoints from before the ``santa`` section kept the model configuration in Lightning's
``hyper_parameters``; it is still read from there.
"""

from __future__ import annotations

from typing import Any

import torch

from santa.errors import SantaError

SECTION = "santa"
# SantaLM holds the GPT as ``self.model``; Lightning's state_dict names its parameters so.
STATE_PREFIX = "model."


class CheckpointMismatchError(SantaError, ValueError):
    """A checkpoint made by another model configuration than the one being trained."""


def santa_section(*, model_config: dict[str, Any], tokenizer_json: str | None, skipped_steps: int) -> dict[str, Any]:
    """The ``santa`` section of a checkpoint being saved now (the global RNG states included)."""
    return {
        "model_config": model_config,
        "tokenizer_json": tokenizer_json,
        "skipped_steps": skipped_steps,
        # Dropout draws from the global RNGs; restoring them makes a resumed run
        # bit-for-bit the continuation of the interrupted one.
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
    }


def _section(checkpoint: dict[str, Any]) -> dict[str, Any]:
    return checkpoint.get(SECTION) or {}


def saved_model_config(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The model configuration a santa checkpoint was made with (None: not recorded)."""
    saved = _section(checkpoint).get("model_config")
    if saved is None:
        saved = (checkpoint.get("hyper_parameters") or {}).get("model_config")
    return saved


def saved_tokenizer_json(checkpoint: dict[str, Any]) -> str | None:
    """The tokenizer the checkpoint carries (tokenizers JSON), or None."""
    return _section(checkpoint).get("tokenizer_json") or None


def saved_skipped_steps(checkpoint: dict[str, Any]) -> int:
    return int(_section(checkpoint).get("skipped_steps", 0))


def restore_rng(checkpoint: dict[str, Any]) -> None:
    """Set the global RNGs to the states saved with the checkpoint (if it has them)."""
    rng = _section(checkpoint).get("rng")
    if rng is not None:
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


def model_state_dict(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The GPT's own state dict (parameter names as ``GPT.state_dict()`` has them)."""
    return {k.removeprefix(STATE_PREFIX): v for k, v in checkpoint["state_dict"].items() if k.startswith(STATE_PREFIX)}


def checkpoint_mismatch(checkpoint: dict[str, Any], ours: dict[str, Any]) -> CheckpointMismatchError | None:
    """The error to raise when ``checkpoint`` was made by another model configuration than ``ours``."""
    saved = saved_model_config(checkpoint)
    if saved is None:
        return None
    diff = {k: (saved.get(k), ours.get(k)) for k in sorted(set(saved) | set(ours)) if saved.get(k) != ours.get(k)}
    if not diff:
        return None
    detail = ", ".join(f"{k}: checkpoint={a!r} vs config={b!r}" for k, (a, b) in diff.items())
    return CheckpointMismatchError(
        f"the checkpoint was made by another model configuration ({detail}). "
        "Resume with the same model overrides it was trained with (see the run's "
        ".hydra/config.yaml), or start a new run without ckpt_path."
    )
