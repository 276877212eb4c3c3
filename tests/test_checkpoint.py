"""santa's checkpoint format has one owner (santa.checkpoint): what SantaLM writes, resuming and
``santa generate x.ckpt`` read back, through a real file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from santa.artifacts import ArtifactError, load_checkpoint
from santa.checkpoint import (
    SECTION,
    checkpoint_mismatch,
    model_state_dict,
    restore_rng,
    saved_model_config,
    saved_skipped_steps,
    saved_tokenizer_json,
)
from santa.data.tokenizer import special_ids, train_tokenizer
from santa.lit import SantaLM
from santa.model.config import GPTConfig

DOCS = ["def add(a, b):\n    return a + b\n", "function sq(x) { return x * x; }\n", "x = [1, 2, 3]\n"]


def _saved(tmp_path: Path, tokenizer_json: str | None) -> tuple[SantaLM, Path]:
    config = GPTConfig(vocab_size=384, n_embd=32, n_layer=1, n_head=2, n_positions=32).to_dict()
    lit = SantaLM(config, {}, max_steps=1, tokens_per_step=1, tokenizer_json=tokenizer_json)
    lit.skipped_steps = 3
    # What Lightning does around the hook: its own keys, then santa's section.
    ckpt = {"state_dict": lit.state_dict(), "hyper_parameters": dict(lit.hparams)}
    lit.on_save_checkpoint(ckpt)
    path = tmp_path / "step.ckpt"
    torch.save(ckpt, path)
    return lit, path


def test_what_santa_writes_it_reads(tmp_path: Path) -> None:
    tok = train_tokenizer(DOCS * 10, vocab_size=300)
    lit, path = _saved(tmp_path, tok.backend_tokenizer.to_str())
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt[SECTION]) == {"model_config", "tokenizer_json", "skipped_steps", "rng"}
    assert saved_model_config(ckpt) == lit.config.to_dict()
    assert saved_skipped_steps(ckpt) == 3
    assert checkpoint_mismatch(ckpt, lit.config.to_dict()) is None
    assert "n_embd" in str(checkpoint_mismatch(ckpt, dict(lit.config.to_dict(), n_embd=64)))
    assert model_state_dict(ckpt).keys() == lit.model.state_dict().keys()

    # The RNG state saved is restored: the draws after a resume are the draws after the save.
    after_save = torch.rand(4)
    torch.rand(10)
    restore_rng(ckpt)
    torch.testing.assert_close(torch.rand(4), after_save)

    # Resuming into a module built without a tokenizer takes the checkpoint's.
    fresh = SantaLM(lit.config.to_dict(), {}, max_steps=1, tokens_per_step=1)
    fresh.on_load_checkpoint(ckpt)
    assert fresh.skipped_steps == 3 and fresh.tokenizer_json == saved_tokenizer_json(ckpt)

    loaded = load_checkpoint(path)
    assert loaded.model.config == lit.config
    for name, value in lit.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], value)
    assert special_ids(loaded.tokenizer) == special_ids(tok)
    assert loaded.tokenizer.encode("x = 1", add_special_tokens=False) == tok.encode("x = 1", add_special_tokens=False)


def test_a_checkpoint_without_tokenizer_or_config_is_refused_by_name(tmp_path: Path) -> None:
    _, path = _saved(tmp_path, None)
    with pytest.raises(ArtifactError, match=f"{path} carries no tokenizer"):
        load_checkpoint(path)
    bare = tmp_path / "bare.ckpt"
    torch.save({"state_dict": {}}, bare)
    with pytest.raises(ArtifactError, match=f"{bare} has no santa model configuration"):
        load_checkpoint(bare)
