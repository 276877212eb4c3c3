"""GPTConfig.attention_params: the generic slot for an attention plugin's own parameters (a sliding
window's width, ...). santa passes it through untouched, checks its keys against the plugin's
``attention_params`` class attribute, and keeps older checkpoints (without the field) resumable."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from conftest import compose_train

from santa import registry
from santa.checkpoint import CheckpointMismatchError
from santa.lit import SantaLM
from santa.model import GPT, GPTConfig, KVCache, generate
from santa.model.attention import CausalSelfAttention

BASE = dict(vocab_size=128, n_embd=32, n_layer=1, n_head=4, n_positions=16, dropout=0.0)


class ScaledMQA(CausalSelfAttention):
    """A stand-in third-party variant: MQA whose output is multiplied by ``gain``."""

    attention_params: ClassVar[tuple[str, ...]] = ("gain",)

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config, 1)
        self.gain = float(config.attention_params.get("gain", 1.0))

    @classmethod
    def kv_heads(cls, config: GPTConfig) -> int:
        return 1

    def forward(self, x, mask=None, cache=None):  # noqa: ANN001, ANN201
        return self.gain * super().forward(x, mask, cache)


@pytest.fixture
def scaled_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    real_get = registry.get

    def get(group: str, name: str) -> object:
        return ScaledMQA if (group, name) == ("santa.attention", "scaled") else real_get(group, name)

    monkeypatch.setattr(registry, "get", get)


def test_default_is_empty_and_left_out_of_the_dict() -> None:
    cfg = GPTConfig(**BASE)
    assert cfg.attention_params == {}
    # Serialised as before the field existed: a checkpoint's config from then compares equal.
    assert "attention_params" not in cfg.to_dict()
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg


def test_round_trip_with_parameters() -> None:
    cfg = GPTConfig(attention="scaled", attention_params={"gain": 0.5, "note": ["a", 1]}, **BASE)
    d = cfg.to_dict()
    assert d["attention_params"] == {"gain": 0.5, "note": ["a", 1]}
    assert GPTConfig.from_dict(d) == cfg
    assert GPTConfig(**BASE).attention_params is not GPTConfig(**BASE).attention_params  # no shared default


@pytest.mark.parametrize(
    "params, match",
    [
        (["window", 4], "must be a dict with str keys"),
        ({1: 4}, "must be a dict with str keys"),
        ({"window": torch.tensor(4)}, "plain JSON values"),
    ],
)
def test_values_must_be_a_plain_dict(params, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GPTConfig(attention="scaled", attention_params=params, **BASE)


@pytest.mark.parametrize("attention", ["mha", "mqa"])
def test_builtins_take_no_parameters(attention: str) -> None:
    with pytest.raises(ValueError, match=rf"attention '{attention}' has no parameter\(s\) window .* it takes none"):
        GPT(GPTConfig(attention=attention, attention_params={"window": 4}, **BASE))


def test_a_plugin_reads_the_keys_it_declares(scaled_registered) -> None:
    torch.manual_seed(0)
    half = GPT(GPTConfig(attention="scaled", attention_params={"gain": 0.5}, **BASE)).eval()
    plain = GPT(GPTConfig(attention="mqa", **BASE)).eval()
    plain.load_state_dict(half.state_dict())
    ids = torch.randint(0, 128, (1, 8))
    with torch.no_grad():
        assert not torch.allclose(half(ids)[0], plain(ids)[0])
        unit = GPT(GPTConfig(attention="scaled", **BASE)).eval()  # no parameters: the plugin's default
        unit.load_state_dict(half.state_dict())
        assert torch.equal(unit(ids)[0], plain(ids)[0])
    assert KVCache.for_model(half, 1, 8).n_kv_heads == 1
    assert generate(half, ids[:, :3], 5).shape == (1, 8)
    with pytest.raises(ValueError, match="no parameter.*gian.*it takes: gain"):
        GPT(GPTConfig(attention="scaled", attention_params={"gian": 0.5}, **BASE))


def test_hydra_model_config_passes_attention_params_through(scaled_registered) -> None:
    from santa.training import model_config

    cfg = compose_train(["model.attention=scaled", "+model.attention_params.gain=0.25", "data.seq_len=16"])
    mcfg = model_config(cfg, vocab_size=128)
    model = GPT(GPTConfig.from_dict(mcfg))
    assert model.transformer.h[0].attn.gain == 0.25


def _lit(model_config: dict) -> SantaLM:
    return SantaLM(model_config, {}, max_steps=1, tokens_per_step=1)


def test_checkpoints_from_before_the_field_still_resume(scaled_registered) -> None:
    old = GPTConfig(**BASE).to_dict()  # what an earlier checkpoint holds: no attention_params key
    _lit(dict(old)).on_load_checkpoint({"santa": {"model_config": old}})
    with_params = GPTConfig(attention="scaled", attention_params={"gain": 0.5}, **BASE).to_dict()
    _lit(dict(with_params)).on_load_checkpoint({"santa": {"model_config": with_params}})
    other = dict(with_params, attention_params={"gain": 2.0})
    with pytest.raises(CheckpointMismatchError, match="attention_params"):
        _lit(dict(with_params)).on_load_checkpoint({"santa": {"model_config": other}})
