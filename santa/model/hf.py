"""Conversion between santa's GPT and Hugging Face ``GPTBigCodeForCausalLM`` (SantaCoder's HF
architecture), both ways, checked by tests to give the same logits.

Exported directories load with ``AutoModelForCausalLM.from_pretrained(dir)``: no
``trust_remote_code``, no network. Parameter names are shared; the only layout difference is MHA's
fused ``c_attn``: santa stores ``[q | k | v]`` (each head-major) for every variant, GPTBigCode's MHA
interleaves per head ``[q_0 k_0 v_0 | q_1 k_1 v_1 | ...]`` (its MQA is ``[q | k | v]`` like ours).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from santa.model.config import GPTConfig
from santa.model.generation import StopFn
from santa.model.gpt import GPT

# Every GPTBigCode activation that is GELU with the tanh approximation (they differ only in
# rounding); SantaCoder's own checkpoints use one of these.
_TANH_GELU = ("gelu_pytorch_tanh", "gelu_new", "gelu_fast")
_EOT = "<|endoftext|>"


class UnsupportedConversionError(ValueError):
    """A model or checkpoint that GPTBigCode and santa's GPT cannot both represent."""


# ----------------------------------------------------------------------------- config
def to_hf_config(
    cfg: GPTConfig, *, bos_token_id: int, eos_token_id: int | list[int], pad_token_id: int | None = None
) -> Any:
    """The ``transformers.GPTBigCodeConfig`` of ``cfg``. bos/eos are required: transformers
    defaults them to GPT-2's 50256, which would be wrong (or out of range) for our vocabulary."""
    from transformers import GPTBigCodeConfig

    if cfg.attention == "gqa":
        raise UnsupportedConversionError(
            f"GPTBigCode has no grouped-query variant (only multi_query=True, one key/value head, or "
            f"False, one per head); this model uses gqa with n_query_groups={cfg.n_query_groups}. "
            "Train with attention='mqa' or 'mha' to export to HF, or keep santa's checkpoint format "
            "(GPT.state_dict + GPTConfig.to_dict) for this model."
        )
    if cfg.attention not in ("mqa", "mha"):
        raise UnsupportedConversionError(
            f"attention={cfg.attention!r} has no GPTBigCode equivalent (only 'mqa' and 'mha'); "
            "keep santa's checkpoint format for this model"
        )
    if not cfg.bias:
        raise UnsupportedConversionError(
            "GPTBigCode always has Linear and LayerNorm biases; a model trained with bias=False "
            "cannot be exported (keep santa's checkpoint format)"
        )
    return GPTBigCodeConfig(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=cfg.n_inner,  # None means 4 * n_embd in both
        activation_function="gelu_pytorch_tanh",
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        layer_norm_epsilon=cfg.layer_norm_epsilon,
        initializer_range=cfg.initializer_range,
        scale_attn_weights=True,
        multi_query=cfg.attention == "mqa",
        tie_word_embeddings=True,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        architectures=["GPTBigCodeForCausalLM"],
    )


def from_hf_config(hf: dict[str, Any] | Any) -> GPTConfig:
    """The GPTConfig of a GPTBigCode config (object or config.json dict); refuses what santa's GPT
    cannot reproduce exactly, naming the key."""
    d = hf if isinstance(hf, dict) else hf.to_dict()
    # GPTBigCode's defaults for keys an old config.json may omit.
    get = lambda key, default: d[key] if d.get(key) is not None else default  # noqa: E731

    if d.get("model_type", "gpt_bigcode") != "gpt_bigcode":
        raise UnsupportedConversionError(f"model_type={d.get('model_type')!r}: only 'gpt_bigcode' is supported")
    act = get("activation_function", "gelu_pytorch_tanh")
    if act not in _TANH_GELU:
        raise UnsupportedConversionError(
            f"activation_function={act!r}: santa's GPT uses tanh-approximated GELU ({', '.join(_TANH_GELU)})"
        )
    required = {"scale_attn_weights": True, "add_cross_attention": False, "tie_word_embeddings": True}
    for key, want in required.items():
        if get(key, want) != want:
            raise UnsupportedConversionError(f"{key}={d[key]!r} is not supported (santa's GPT needs {want})")
    if get("new_decoder_architecture", False):
        raise UnsupportedConversionError("new_decoder_architecture=True is not supported")
    drops = {k: float(get(k, 0.1)) for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
    if len(set(drops.values())) > 1:
        warnings.warn(
            f"santa's GPT has one dropout rate; using resid_pdrop={drops['resid_pdrop']} (got {drops})",
            stacklevel=2,
        )
    return GPTConfig(
        vocab_size=int(get("vocab_size", 50257)),
        n_positions=int(get("n_positions", get("max_position_embeddings", 1024))),
        n_embd=int(get("n_embd", get("hidden_size", 768))),
        n_layer=int(get("n_layer", get("num_hidden_layers", 12))),
        n_head=int(get("n_head", get("num_attention_heads", 12))),
        n_inner=d.get("n_inner"),
        attention="mqa" if get("multi_query", True) else "mha",
        dropout=drops["resid_pdrop"],
        layer_norm_epsilon=float(get("layer_norm_epsilon", 1e-5)),
        initializer_range=float(get("initializer_range", 0.02)),
        bias=True,
    )


# ------------------------------------------------------------------------ state dict
def _mha_to_hf(t: Tensor, n_head: int) -> Tensor:
    """[q | k | v] (each head-major) -> per-head [q_h k_h v_h]; weight [3C, C] or bias [3C]."""
    return t.reshape(3, n_head, -1, *t.shape[1:]).transpose(0, 1).reshape(t.shape)


def _mha_from_hf(t: Tensor, n_head: int) -> Tensor:
    return t.reshape(n_head, 3, -1, *t.shape[1:]).transpose(0, 1).reshape(t.shape)


def to_hf_state_dict(model: GPT) -> dict[str, Tensor]:
    """GPTBigCode tensors (names ``transformer.*``; lm_head is tied, so not stored)."""
    cfg = model.config
    out: dict[str, Tensor] = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        if cfg.attention == "mha" and ".attn.c_attn." in name:
            t = _mha_to_hf(t, cfg.n_head)
        out[name] = t.detach().contiguous()
    return out


def from_hf_state_dict(sd: dict[str, Tensor], cfg: GPTConfig) -> dict[str, Tensor]:
    """santa state dict from GPTBigCode tensors (accepts a bare GPTBigCodeModel's unprefixed names)."""
    if not any(k.startswith("transformer.") for k in sd):
        sd = {f"transformer.{k}": v for k, v in sd.items()}
    out: dict[str, Tensor] = {}
    for name, t in sd.items():
        if name.endswith((".bias", ".masked_bias")) and name.split(".")[-2] in ("transformer", "attn"):
            continue  # causal-mask buffers of older GPTBigCode/GPT-2 checkpoints
        if name == "lm_head.weight":
            wte = sd.get("transformer.wte.weight")
            if wte is not None and not torch.equal(t, wte):
                raise UnsupportedConversionError(
                    "lm_head.weight differs from transformer.wte.weight: santa's GPT ties them"
                )
            continue
        if cfg.attention == "mha" and ".attn.c_attn." in name:
            t = _mha_from_hf(t, cfg.n_head)
        out[name] = t
    return out


# ---------------------------------------------------------------------------- files
def _atomic_dir(out_dir: Path) -> tuple[Path, Callable[[], None]]:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))

    def commit() -> None:
        # A reader never sees a half-written directory: the new one appears by rename; an old one
        # is moved aside first (rename onto a non-empty directory is not allowed) and then removed.
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "d")
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    return tmp, commit


def _eot_id(tokenizer: Any) -> int:
    if hasattr(tokenizer, "token_to_id"):  # a bare tokenizers.Tokenizer
        tid = tokenizer.token_to_id(_EOT)
    else:
        # Look it up in the vocabulary: SantaCoder's tokenizer uses <|endoftext|> as its unk
        # token too, so "converts to the unk id" does not mean "missing".
        tid = tokenizer.get_vocab().get(_EOT)
    if tid is None:
        raise ValueError(f"the tokenizer has no {_EOT!r} token; pass bos_token_id/eos_token_id explicitly")
    return int(tid)


def export_hf(
    model: GPT,
    out_dir: str | os.PathLike[str],
    tokenizer: Any | None = None,
    *,
    bos_token_id: int | None = None,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int | None = None,
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ the tokenizer) that
    ``AutoModelForCausalLM.from_pretrained(out_dir)`` loads as ``GPTBigCodeForCausalLM``.

    With a tokenizer (an HF tokenizer or a ``tokenizers.Tokenizer``), bos and eos default to its
    ``<|endoftext|>`` id (SantaCoder uses that one token for both); without one, pass them. The
    directory appears atomically (written to a temporary sibling, then renamed) and replaces an
    existing one.
    """
    from safetensors.torch import save_file

    if tokenizer is not None and (bos_token_id is None or eos_token_id is None):
        eot = _eot_id(tokenizer)
        bos_token_id = eot if bos_token_id is None else bos_token_id
        eos_token_id = eot if eos_token_id is None else eos_token_id
    if bos_token_id is None or eos_token_id is None:
        raise ValueError("export_hf needs bos_token_id and eos_token_id (or a tokenizer with <|endoftext|>)")
    hf_config = to_hf_config(
        model.config, bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id
    )
    hf_config.dtype = str(model.transformer.wte.weight.dtype).removeprefix("torch.")
    tensors = {k: v.cpu() for k, v in to_hf_state_dict(model).items()}

    out_dir = Path(out_dir)
    tmp, commit = _atomic_dir(out_dir)
    try:
        hf_config.save_pretrained(tmp)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if tokenizer is not None:
            if not hasattr(tokenizer, "save_pretrained"):
                from transformers import PreTrainedTokenizerFast

                tokenizer = PreTrainedTokenizerFast(
                    tokenizer_object=tokenizer, bos_token=_EOT, eos_token=_EOT, unk_token=_EOT
                )
            tokenizer.save_pretrained(tmp)
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _load_tensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    single = path / "model.safetensors"
    index = path / "model.safetensors.index.json"
    if single.exists():
        return load_file(str(single))
    if index.exists():
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        sd: dict[str, Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            sd.update(load_file(str(path / shard)))
        return sd
    if (path / "pytorch_model.bin").exists():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{path}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def import_hf(
    path: str | os.PathLike[str], *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> GPT:
    """Load a local GPTBigCode directory (config.json + safetensors, sharded or not) into santa's
    GPT; ``model.config`` is its GPTConfig. ``dtype=None`` keeps the stored dtype. Offline only:
    ``path`` is a directory, never a hub name."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{config_file} not found (import_hf reads a local GPTBigCode directory)")
    cfg = from_hf_config(json.loads(config_file.read_text()))
    sd = from_hf_state_dict(_load_tensors(path), cfg)

    with torch.device("meta"):
        model = GPT(cfg)
    expected = set(model.state_dict()) - {"lm_head.weight"}
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if missing or unexpected:
        raise UnsupportedConversionError(
            f"{path}: checkpoint does not match its config.json; missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.load_state_dict(sd, strict=False, assign=True)
    model.lm_head.weight = model.transformer.wte.weight  # assign=True replaced the tied Parameter
    return model.to(device=device, dtype=dtype)


# ------------------------------------------------------------------ generation adapter
class HFGenerationModel:
    """:class:`santa.model.generation.GenerationModel` over an HF causal LM, so the evaluation
    harness runs HF models through the same code path as santa's."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.max_length = int(getattr(model.config, "n_positions", None) or model.config.max_position_embeddings)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def generate(
        self,
        input_ids: Tensor,
        max_new_tokens: int,
        *,
        attention_mask: Tensor | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int | None = None,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        generator: torch.Generator | None = None,
        stop: StopFn | None = None,
    ) -> Tensor:
        from transformers import StoppingCriteria, StoppingCriteriaList

        prompt_len = input_ids.shape[1]
        if eos_token_id is None:
            eos_token_id = self.model.generation_config.eos_token_id
        eos_list = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
        if pad_token_id is None:
            pad_token_id = eos_list[0] if eos_list else self.model.generation_config.pad_token_id

        class _Stop(StoppingCriteria):
            def __init__(self, fn: StopFn) -> None:
                self.fn = fn

            def __call__(self, ids: Tensor, scores: Tensor, **kwargs: Any) -> Tensor:
                return self.fn(ids[:, prompt_len:]).to(device=ids.device, dtype=torch.bool)

        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens,
            attention_mask=attention_mask if attention_mask is not None else torch.ones_like(input_ids),
            eos_token_id=eos_list or None,
            pad_token_id=pad_token_id,
            use_cache=True,
            stopping_criteria=StoppingCriteriaList([_Stop(stop)]) if stop is not None else None,
        )
        if temperature == 0.0:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k or 0)
        # HF samples from the global RNG; seeding it from ``generator`` inside fork_rng keeps runs
        # reproducible without disturbing the caller's global state.
        with torch.random.fork_rng(devices=[]):
            if generator is not None:
                torch.manual_seed(generator.initial_seed())
            with torch.inference_mode():
                return self.model.generate(input_ids, **kwargs)
