"""Load a trained model and its tokenizer from whatever a user points at: a Lightning checkpoint
(`.ckpt`), a Hugging Face GPTBigCode export directory, or a run directory under outputs/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from santa.data.tokenizer import _wrap, detect_spelling, load_tokenizer
from santa.errors import SantaError
from santa.model.config import GPTConfig
from santa.model.gpt import GPT


class ArtifactError(SantaError, ValueError):
    """A path that holds no model santa can load."""


@dataclass
class Loaded:
    model: GPT
    tokenizer: PreTrainedTokenizerFast
    source: Path


def tokenizer_from_json(text: str) -> PreTrainedTokenizerFast:
    tok = Tokenizer.from_str(text)
    wrapped = _wrap(tok, "santacoder")
    return _wrap(tok, detect_spelling(wrapped))


def load_checkpoint(path: Path, device: str = "cpu") -> Loaded:
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # pickle/zip errors name no file; say which and what it should be
        raise ArtifactError(f"{path} is not a readable santa/Lightning checkpoint: {exc}") from exc
    santa = ckpt.get("santa") or {}
    cfg = santa.get("model_config") or ckpt.get("hyper_parameters", {}).get("model_config")
    if cfg is None:
        raise ArtifactError(f"{path} has no santa model configuration: was it written by santa's trainer?")
    if not santa.get("tokenizer_json"):
        raise ArtifactError(f"{path} carries no tokenizer; export the run with hf/ or pass a newer checkpoint")
    model = GPT(GPTConfig.from_dict(dict(cfg)))
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return Loaded(model.eval(), tokenizer_from_json(santa["tokenizer_json"]), path)


def load_hf_dir(path: Path, device: str = "cpu") -> Loaded:
    from santa.model.hf import import_hf

    model = import_hf(path, device=device)
    return Loaded(model.eval(), load_tokenizer(path), path)


def load_model(path: str | Path, device: str = "cpu") -> Loaded:
    """A `.ckpt`, an HF export dir (config.json + safetensors), or a run dir (uses hf/ or last.ckpt)."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"no model at {path}: give a .ckpt file, an HF export directory or a run directory")
    if path.is_file():
        return load_checkpoint(path, device)
    if (path / "config.json").is_file():
        return load_hf_dir(path, device)
    if (path / "hf" / "config.json").is_file():
        return load_hf_dir(path / "hf", device)
    for candidate in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
        if candidate.is_file():
            return load_checkpoint(candidate, device)
    raise ArtifactError(
        f"{path} holds no model: expected config.json (HF export), hf/config.json or "
        "checkpoints/last.ckpt (a santa run directory)"
    )
