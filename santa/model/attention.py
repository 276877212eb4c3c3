"""Causal self-attention with a configurable number of key/value heads: MHA, MQA and GQA.

One module serves all three variants; a plugin only says how many key/value heads it has
(``kv_heads(config)``), so the KV cache can be sized without building a layer.

Fused ``c_attn`` layout (output features, in order)::

    [ q: n_head * head_dim | k: n_kv * head_dim | v: n_kv * head_dim ]

each block head-major (head 0's ``head_dim`` features first). For MQA (n_kv = 1) this is exactly
HF GPTBigCode's ``multi_query=True`` layout (2048 -> 2048 + 2 x 128 in SantaCoder). GPTBigCode's MHA
interleaves per head instead (``[q_0 k_0 v_0 | q_1 k_1 v_1 | ...]``); ``santa.model.hf`` permutes
on export/import. Keeping q, k and v in contiguous blocks lets every variant split them with views.

Query head ``h`` reads key/value head ``h // (n_head // n_kv)`` (``repeat_interleave`` order, as
SDPA's ``enable_gqa`` and HF's ``repeat_kv``).

Speed notes (torch 2.13, CPU, 2 cores, 8 heads x 64; `benchmarks/bench_model.py --kernels`):
- many query tokens (training, prefill): ``enable_gqa=True`` beat expanding k/v to ``n_head``
  views (~62 vs ~68 ms fwd+bwd at 4 x 512) and matched folding the heads into the sequence with
  an explicit mask, which would also lose the ``is_causal`` fast path.
- one query token (decoding): folding the query heads of a group into the query-length axis,
  ``[B, n_kv, n_head // n_kv, head_dim]`` against ``[B, n_kv, S, head_dim]`` keys, is a plain
  view of the projected token and was 2-3x faster than ``enable_gqa`` or expand at batch 16;
  each key/value head of the cache is read once per step, not once per query head.
- attention dropout (training at the paper's 0.1): CPU SDPA has no fused kernel with dropout; its
  math kernel builds the full [T, T] weights, dropout mask and their gradients (32 MB each per
  layer at 4 x 8 heads x 512^2, as large as this CPU's whole L3) and computes the masked-out half
  too. In blocks of 64 query rows, each against only the keys it can see
  (:func:`causal_attention_with_dropout`), fwd + bwd took 106 vs 284 ms for MQA at 4 x 512, one
  thread (MHA 126 vs 253; 1 x 2048 with 16 x 128 heads 1.1 vs 2.7 s; the flash kernel without
  dropout: 97 ms at 4 x 512).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from santa.model.config import GPTConfig

# Query rows per block of the attention-dropout path (64 and 32 tied at 512 and 2048 tokens; 256
# was 1.6x slower at 512).
DROPOUT_BLOCK = 64


def causal_attention_with_dropout(
    q: Tensor, k: Tensor, v: Tensor, dropout_p: float, block: int = DROPOUT_BLOCK
) -> Tensor:
    """Causal ``softmax(q k^T / sqrt(head_dim))``, attention dropout ``dropout_p``, times ``v``:
    SDPA's math with ``is_causal=True`` (and ``enable_gqa``), computed ``block`` query rows at a
    time against only the keys those rows can see, so the masked-out half of [T, T] is never
    computed and each block's weights stay in cache.

    q: [B, H, T, D]; k, v: [B, K, T, D] with K dividing H (query head h reads key/value head
    h // (H // K)) -> [B, H, T, D]. The query heads of a group are folded into the query-row
    axis, so every key/value head is multiplied once per block, never expanded.
    """
    B, H, T, D = q.shape
    K = k.size(1)
    G = H // K
    q = q * D**-0.5
    outs = []
    for s in range(0, T, block):
        e = min(T, s + block)
        n = e - s
        scores = torch.matmul(q[:, :, s:e].reshape(B, K, G * n, D), k[:, :, :e].transpose(-1, -2)).view(B, H, n, e)
        future = torch.ones(n, e, dtype=torch.bool, device=q.device).triu_(s + 1)  # key j > query s + i
        weights = F.dropout(scores.masked_fill(future, float("-inf")).softmax(-1), dropout_p, training=True)
        outs.append(torch.matmul(weights.view(B, K, G * n, e), v[:, :, :e]).view(B, H, n, D))
    return torch.cat(outs, dim=2)


class CausalSelfAttention(nn.Module):
    """Attention over ``n_kv`` key/value heads shared by groups of ``n_head // n_kv`` query heads.

    ``forward(x, mask, cache)``:
      - x: [B, T, C]
      - mask: None (plain causal when T > 1; everything visible when T == 1) or a boolean
        [B or 1, 1, T, S] tensor where True means "may attend"; S = keys incl. the cache.
      - cache: None or ``(k_cache, v_cache, start)`` with caches [B, n_kv, max_len, head_dim]; the
        new keys/values are written at ``start:start+T`` and attention reads ``0:start+T``.
    """

    # The keys of ``GPTConfig.attention_params`` this variant reads; the model refuses others.
    attention_params: ClassVar[tuple[str, ...]] = ()
    # The optional ``GPTConfig`` fields this variant reads (``n_query_groups``); a config that sets
    # one for a variant that does not list it is refused.
    config_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: GPTConfig, n_kv_head: int) -> None:
        super().__init__()
        if config.n_head % n_kv_head:
            raise ValueError(f"number of key/value heads ({n_kv_head}) must divide n_head ({config.n_head})")
        self.n_head = config.n_head
        self.n_kv_head = n_kv_head
        self.head_dim = config.head_dim
        self.n_embd = config.n_embd
        self.c_attn = nn.Linear(config.n_embd, (config.n_head + 2 * n_kv_head) * config.head_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    @classmethod
    def kv_heads(cls, config: GPTConfig) -> int:
        raise NotImplementedError

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        cache: tuple[Tensor, Tensor, int] | None = None,
    ) -> Tensor:
        B, T, C = x.shape
        H, K, D = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split((H * D, K * D, K * D), dim=-1)
        k = k.view(B, T, K, D).transpose(1, 2)  # [B, K, T, D]
        v = v.view(B, T, K, D).transpose(1, 2)
        if cache is not None:
            k_cache, v_cache, start = cache
            # In-place write into the preallocated cache: no torch.cat, no reallocation per step.
            k_cache[:, :, start : start + T] = k
            v_cache[:, :, start : start + T] = v
            k = k_cache[:, :, : start + T]
            v = v_cache[:, :, : start + T]
        # At dropout 0 — eval, generation, or a config with dropout 0 — SDPA's fused flash kernel
        # runs. Any dropout_p > 0 would send CPU SDPA to its math kernel (explicit [T, S] weights,
        # bernoulli mask, bmm); plain causal training attention takes the blocked path instead
        # (tests/test_model.py checks which kernel each case takes).
        dropout_p = self.attn_dropout if self.training else 0.0
        if dropout_p > 0.0 and mask is None and cache is None and T > 1 and x.device.type == "cpu":
            q = q.view(B, T, H, D).transpose(1, 2)
            y = causal_attention_with_dropout(q, k, v, dropout_p)
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))

        if T == 1 and (mask is None or mask.size(1) == 1):
            # Decoding: the G = H // K query heads of a group become G "query positions" of one
            # key/value head; a view, no causal mask needed (every cached key is in the past).
            y = F.scaled_dot_product_attention(q.view(B, K, H // K, D), k, v, attn_mask=mask, dropout_p=dropout_p)
            return self.resid_dropout(self.c_proj(y.view(B, 1, C)))

        q = q.view(B, T, H, D).transpose(1, 2)  # [B, H, T, D]
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=dropout_p,
            is_causal=mask is None,
            enable_gqa=K != H,
        )  # [B, H, T, D]
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MultiHeadAttention(CausalSelfAttention):
    """Every query head has its own key/value head (GPT-2, the paper's MHA ablation)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config, self.kv_heads(config))

    @classmethod
    def kv_heads(cls, config: GPTConfig) -> int:
        return config.n_head


class MultiQueryAttention(CausalSelfAttention):
    """One key/value head shared by all query heads (SantaCoder; Shazeer 2019)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config, self.kv_heads(config))

    @classmethod
    def kv_heads(cls, config: GPTConfig) -> int:
        return 1


class GroupedQueryAttention(CausalSelfAttention):
    """``config.n_query_groups`` key/value heads, each shared by ``n_head // n_query_groups`` queries."""

    config_fields: ClassVar[tuple[str, ...]] = ("n_query_groups",)

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config, self.kv_heads(config))

    @classmethod
    def kv_heads(cls, config: GPTConfig) -> int:
        groups = config.n_query_groups
        if groups is None:
            raise ValueError(
                "attention='gqa' needs GPTConfig.n_query_groups (the number of key/value heads); "
                f"choose a divisor of n_head={config.n_head}"
            )
        if groups <= 0 or config.n_head % groups:
            raise ValueError(
                f"GPTConfig.n_query_groups ({groups}) must be a positive divisor of n_head ({config.n_head})"
            )
        return groups
