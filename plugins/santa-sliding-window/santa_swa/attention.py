"""Sliding-window attention (Mistral 7B; the local attention of Longformer): the query at position
``i`` attends to the keys at positions ``i - window + 1 .. i``, i.e. to at most ``window`` tokens,
itself included. Layers stack: after ``L`` layers a token can depend on tokens up to
``L * (window - 1)`` positions back, at a per-token cost that no longer grows with the context.

It is santa's own :class:`~santa.model.attention.CausalSelfAttention` (the same fused ``c_attn``
layout, the same KV cache, the same SDPA calls) with a narrower view:

- training and prefill (many queries): a banded causal boolean mask for SDPA, AND-ed with the
  padding mask santa passes. While every key is inside every query's window (``positions so far
  <= window``) nothing is changed, so the layer is then exactly the causal attention of the same
  head layout (and keeps SDPA's ``is_causal`` fast path).
- decoding (one new token): santa preallocates the cache for the whole generation; this layer hands
  the base class a *view* of the cache that starts ``window - 1`` positions before the new token,
  so each step reads and computes over at most ``window`` keys, however long the text gets. (The
  cache's memory is still the full length: santa sizes it, not the plugin; Mistral's rolling
  buffer would need the core to ask the plugin for a cache length.)

Parameters, from ``GPTConfig.attention_params`` (``model.attention_params`` in Hydra):

    window          int >= 1, required: how many positions a query sees, itself included
    n_query_groups  key/value heads (default 1: MQA, as SantaCoder; n_head: MHA; else GQA groups)
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from santa.errors import SantaError
from santa.model.attention import CausalSelfAttention
from santa.model.config import GPTConfig


class SlidingWindowConfigError(SantaError, ValueError):
    """``model.attention_params`` do not describe a valid sliding window."""


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def window_settings(config: GPTConfig) -> tuple[int, int]:
    """(window, key/value heads) from ``config.attention_params``, validated."""
    params = config.attention_params
    window = params.get("window")
    if window is None:
        raise SlidingWindowConfigError(
            "attention='swa' needs a window: set model.attention_params.window=<positions> (or use model=tiny_swa)"
        )
    if not _positive_int(window):
        raise SlidingWindowConfigError(f"model.attention_params.window must be a positive int, got {window!r}")
    groups = params.get("n_query_groups", 1)
    if not _positive_int(groups) or config.n_head % groups:
        raise SlidingWindowConfigError(
            f"model.attention_params.n_query_groups ({groups!r}) must be a positive divisor of n_head ({config.n_head})"
        )
    return window, groups


class SlidingWindowAttention(CausalSelfAttention):
    """Causal attention restricted to the last ``window`` positions (see the module docstring)."""

    attention_params: ClassVar[tuple[str, ...]] = ("window", "n_query_groups")

    def __init__(self, config: GPTConfig) -> None:
        window, groups = window_settings(config)
        super().__init__(config, groups)
        self.window = window
        self._band: tuple[tuple[int, int, int, torch.device], Tensor] | None = None

    @classmethod
    def kv_heads(cls, config: GPTConfig) -> int:
        return window_settings(config)[1]

    def extra_repr(self) -> str:
        return f"window={self.window}, n_head={self.n_head}, n_kv_head={self.n_kv_head}"

    def band(self, start: int, T: int, first_key: int, device: torch.device) -> Tensor:
        """[1, 1, T, start + T - first_key] boolean: query ``start + t`` may see key ``first_key + s``
        when it is neither in the future nor ``window`` or more positions back. The last one is
        kept: every layer of a forward asks for the same band."""
        key = (start, T, first_key, device)
        if self._band is None or self._band[0] != key:
            q_pos = torch.arange(start, start + T, device=device)[:, None]
            k_pos = torch.arange(first_key, start + T, device=device)[None, :]
            self._band = (key, ((k_pos <= q_pos) & (k_pos > q_pos - self.window))[None, None])
        return self._band[1]

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        cache: tuple[Tensor, Tensor, int] | None = None,
    ) -> Tensor:
        T = x.size(1)
        start = cache[2] if cache is not None else 0
        if start + T <= self.window:
            return super().forward(x, mask, cache)  # every key is inside every query's window
        # Keys before the first query's window are invisible to all queries: leave them out.
        first_key = max(0, start - self.window + 1)
        if cache is not None and first_key:
            k_cache, v_cache, _ = cache
            # A view: the base class writes the new keys through it into santa's cache.
            cache = (k_cache[:, :, first_key:], v_cache[:, :, first_key:], start - first_key)
        if mask is not None:
            mask = mask[..., first_key:]
        if T > 1:
            band = self.band(start, T, first_key, x.device)
            mask = band if mask is None else mask & band
        # T == 1: the view holds exactly the new token's window; the padding mask is all it needs.
        return super().forward(x, mask, cache)
