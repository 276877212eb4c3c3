"""Incremental decoding with a preallocated KV cache, and the small interface the evaluation
harness generates through (so an HF model can be evaluated by the same code).

The cache holds, per layer, keys and values of shape [B, n_kv_heads, max_len, head_dim]: an MQA
model caches ONE head per layer, n_head times less memory than MHA (SantaCoder: 16x).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Protocol, cast, runtime_checkable

import torch
from torch import Tensor, nn

from santa.model.config import GPTConfig
from santa.model.gpt import GPT, attention_class

StopFn = Callable[[Tensor], Tensor]
"""Per-row "finished" test: generated ids so far [B, n] (the prompt excluded) -> bool [B]."""


class _SizesKVCache(Protocol):
    """An attention plugin class, as the KV cache sees it."""

    def kv_heads(self, config: GPTConfig) -> int: ...


class KVCache:
    """Keys and values of every layer, written in place at ``length``; positions are shared by
    all rows (batched prompts are left-padded to a common length)."""

    def __init__(self, k: list[Tensor], v: list[Tensor]) -> None:
        self.k = k
        self.v = v
        self.length = 0

    @classmethod
    def for_config(
        cls,
        config: GPTConfig,
        batch_size: int,
        max_len: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> KVCache:
        # The plugin class says how many key/value heads it keeps: no layer is built for sizing.
        # (Its ``kv_heads`` classmethod is part of the attention contract, docs/plugins.md, which
        # ``attention_class``'s return type, any nn.Module class, does not spell out.)
        n_kv = cast(_SizesKVCache, attention_class(config)).kv_heads(config)
        shape = (batch_size, n_kv, max_len, config.head_dim)
        k = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        v = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        return cls(k, v)

    @classmethod
    def for_model(cls, model: GPT, batch_size: int, max_len: int) -> KVCache:
        weight = model.transformer.wte.weight
        return cls.for_config(model.config, batch_size, max_len, device=weight.device, dtype=weight.dtype)

    @property
    def max_len(self) -> int:
        return self.k[0].size(2)

    @property
    def n_kv_heads(self) -> int:
        return self.k[0].size(1)

    @property
    def cache_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.k, *self.v))

    def reset(self) -> None:
        self.length = 0


def _as_id_list(ids: int | Sequence[int] | None) -> list[int]:
    if ids is None:
        return []
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids]


def _filter_logits(logits: Tensor, top_k: int | None, top_p: float) -> Tensor:
    """Set logits outside the top-k / nucleus (top-p) set to -inf. logits: [B, V] float."""
    if top_k is not None and 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the mass before it already reaches top_p; the top token always stays.
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, sorted_idx, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _next_token(
    logits: Tensor, temperature: float, top_k: int | None, top_p: float, generator: torch.Generator | None
) -> Tensor:
    """logits [B, V] -> token ids [B]."""
    if temperature == 0.0:
        return logits.argmax(-1)
    logits = _filter_logits(logits.float() / temperature, top_k, top_p)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# Decoding multiplies [B, C] activations by every weight matrix once per token: small-M GEMMs,
# M = batch size. oneDNN's inner-product with the weights reordered once for that M (the packed
# layout inductor's CPU "freezing" uses) measured, one thread on this project's AVX-512 machine,
# 9.6 vs 20-24 ms for the 16 x 512 -> 49,280 vocabulary projection (F.linear, MKL's packed sgemm
# and a pre-transposed weight all took 20 ms: 40 GFLOPS against oneDNN's 84) and 1.4-1.6x less for
# the block's matrices at B = 16; at B = 1 the vocabulary projection takes 7 instead of 10 ms.
# The packed copies live only for one generate() call (a transient second copy of the weights;
# packing the 6 x 512 benchmark model takes ~0.07 s). Prefill (M = B x T) runs through the same
# packed weights at ordinary-GEMM speed (1.18 vs 1.31 s for 2,048 x 512 -> 49,280).
PACK_MIN_BATCH = 1


def _can_pack(model: nn.Module, batch_size: int) -> bool:
    weight = next(model.parameters())
    return (
        batch_size >= PACK_MIN_BATCH
        and weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def _packed_linear(packed: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


@contextmanager
def _packed_linears(model: nn.Module, batch_size: int) -> Iterator[None]:
    """Inside the context, every plain ``nn.Linear`` of ``model`` multiplies with oneDNN-packed
    weights laid out for ``batch_size`` rows (inference only; restored on exit, also on error).
    A weight shared by several linears is packed once."""
    patched: list[nn.Module] = []
    packed_of: dict[int, Tensor] = {}
    try:
        if _can_pack(model, batch_size):
            for module in model.modules():
                if type(module) is nn.Linear and "forward" not in module.__dict__:
                    if id(module.weight) not in packed_of:
                        packed_of[id(module.weight)] = torch.ops.mkldnn._reorder_linear_weight(
                            module.weight.detach(), batch_size
                        )
                    bias = module.bias.detach() if module.bias is not None else None
                    # An instance attribute shadows Linear.forward for this module only (mypy
                    # refuses assigning to a method; deliberate here, undone below).
                    module.forward = partial(_packed_linear, packed_of[id(module.weight)], bias)  # type: ignore[method-assign]
                    patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward


@torch.inference_mode()
def generate(
    model: GPT,
    input_ids: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,
    attention_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    stop: StopFn | None = None,
) -> Tensor:
    """Continue ``input_ids`` [B, T] by up to ``max_new_tokens`` tokens -> [B, T + n], n <= max_new_tokens.

    temperature 0 is greedy; otherwise sample from softmax(logits / temperature) restricted to
    ``top_k`` and the ``top_p`` nucleus, drawing from ``generator``. Batched prompts of different
    length are LEFT-padded with ``attention_mask`` (1 = token, 0 = padding): positions count real
    tokens only and padded keys are never attended, so each row continues exactly as it would
    alone. A row finishes when it emits one of ``eos_token_id`` (kept) or when ``stop`` says so
    (e.g. a text stop sequence); later positions of a finished row hold ``pad_token_id``
    (default: the first eos id). Generation ends early once every row has finished, so n can be
    smaller than ``max_new_tokens``. The model runs in eval mode (dropout off) and is put back in
    its previous mode afterwards.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, T], got shape {list(input_ids.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    B, T = input_ids.shape
    total = T + max_new_tokens
    if total > model.config.n_positions:
        raise ValueError(
            f"prompt ({T}) + max_new_tokens ({max_new_tokens}) = {total} exceeds n_positions={model.config.n_positions}"
        )
    eos_ids = _as_id_list(eos_token_id)
    if pad_token_id is None and eos_ids:
        pad_token_id = eos_ids[0]
    if pad_token_id is None and stop is not None:
        raise ValueError("stop= needs eos_token_id or pad_token_id to fill the rows it finishes")
    if max_new_tokens == 0:
        return input_ids.clone()

    device = input_ids.device
    # Everything the decode loop writes or reads per step is allocated here once: the output ids,
    # the positions and the key mask (the loop passes views of them), the KV cache, and the
    # per-row flags. A step allocates only the model's own activations and [B]-sized scratch.
    out = torch.empty(B, total, dtype=torch.long, device=device)
    out[:, :T] = input_ids

    if attention_mask is not None:
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask must match input_ids {list(input_ids.shape)}, got {list(attention_mask.shape)}"
            )
        if bool(attention_mask.all()):
            attention_mask = None  # no padding: skip every mask tensor
    if attention_mask is not None:
        if bool((attention_mask[:, 1:] < attention_mask[:, :-1]).any()):
            raise ValueError("attention_mask must be left padding (0s then 1s in every row)")
        # Keys of generated tokens are always valid: the mask grows by ones.
        mask = torch.ones(B, total, dtype=torch.bool, device=device)
        mask[:, :T] = attention_mask.bool()
        # Positions count real tokens only; generated token i sits at (last prompt position) + 1 + i.
        positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    else:
        mask = None
        positions = torch.arange(total, device=device).expand(B, total)

    eos = torch.tensor(eos_ids, device=device) if eos_ids else None
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    token = torch.empty(B, dtype=torch.long, device=device)
    n = 0
    was_training = model.training
    model.eval()
    try:
        with _packed_linears(model, B):
            cache = KVCache.for_model(model, B, total)
            # Prefill: the vocabulary projection only for the last position, the one sampled from.
            logits, _ = model(
                input_ids,
                kv_cache=cache,
                attention_mask=mask[:, :T] if mask is not None else None,
                position_ids=positions[:, :T],
                logits_to_keep=1,
            )
            for step in range(max_new_tokens):
                token.copy_(_next_token(logits[:, -1], temperature, top_k, top_p, generator))
                if pad_token_id is not None:
                    token.masked_fill_(finished, pad_token_id)
                out[:, T + step] = token
                n = step + 1
                if eos is not None:
                    finished |= torch.isin(token, eos)
                if stop is not None:
                    finished |= stop(out[:, T : T + n]).to(device=device, dtype=torch.bool)
                if n == max_new_tokens or ((eos is not None or stop is not None) and bool(finished.all())):
                    break
                logits, _ = model(
                    out[:, T + step : T + n],
                    kv_cache=cache,
                    attention_mask=mask[:, : T + n] if mask is not None else None,
                    position_ids=positions[:, T + step : T + n],
                    logits_to_keep=1,
                )
    finally:
        model.train(was_training)
    return out[:, : T + n]


@runtime_checkable
class GenerationModel(Protocol):
    """What the evaluation harness needs from a model: token ids in, token ids out.

    ``generate`` takes left-padded prompts [B, T] (+ mask) and returns [B, T + n] with the prompt
    first; rows that finished early are padded with ``pad_token_id``/the first eos id. Implemented
    by :class:`SantaGenerationModel` and ``santa.model.hf.HFGenerationModel``.
    """

    max_length: int  # the model's context window (prompt + new tokens)

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
    ) -> Tensor: ...


class SantaGenerationModel:
    """:class:`GenerationModel` over a santa :class:`~santa.model.gpt.GPT`."""

    def __init__(self, model: GPT) -> None:
        self.model = model
        self.max_length = model.config.n_positions

    @property
    def device(self) -> torch.device:
        return self.model.transformer.wte.weight.device

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
        return generate(
            self.model,
            input_ids,
            max_new_tokens,
            attention_mask=attention_mask,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            generator=generator,
            stop=stop,
        )
