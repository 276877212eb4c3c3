"""The GPT-2 decoder SantaCoder uses: pre-LN blocks, learned absolute positions, tanh-GELU MLP,
tied input/output embeddings. The attention variant is a plugin found by name in the registry.

Parameter names mirror HF ``GPTBigCodeForCausalLM`` (``transformer.h.0.attn.c_attn.weight``, ...)
so conversion is a rename-free copy (plus a row permutation of ``c_attn`` for MHA, see
``santa.model.hf``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from santa import registry
from santa.model.config import GPTConfig, ModelConfigError
from santa.model.loss import chunked_lm_head_cross_entropy

if TYPE_CHECKING:
    from santa.model.generation import KVCache

    # What GPT.transformer holds, for the type checker only: at run time it stays a plain
    # nn.ModuleDict / nn.ModuleList (the state dict's names are HF's), whose item access torch
    # types as ``Tensor | Module``.
    class _Blocks(nn.ModuleList):
        def __iter__(self) -> Iterator[Block]: ...

    class _Trunk(nn.ModuleDict):
        wte: nn.Embedding
        wpe: nn.Embedding
        drop: nn.Dropout
        h: _Blocks
        ln_f: nn.LayerNorm


def attention_class(config: GPTConfig) -> type[nn.Module]:
    """The attention plugin class ``config.attention`` names (raises UnknownPluginError), checked
    by the registry against ``config.attention_params``: a plugin reads only the keys its
    ``attention_params`` class attribute lists (none for the built-ins), and any other key is
    refused (PluginParamsError, a ValueError) rather than ignored."""
    cls: type[nn.Module] = registry.resolve("santa.attention", config.attention, config.attention_params)
    return cls


def check_attention_layer(layer: object, name: str) -> None:
    """What the GPT needs of an attention layer beyond calling it as ``layer(x, mask, cache)``
    (docs/plugins.md): an ``nn.Module`` with a ``c_proj`` linear output projection, whose
    initialisation the GPT scales by depth, and a ``kv_heads(config)`` classmethod that sizes the
    KV cache for generation without building a layer. Checked once at build time, so a plugin
    that lacks one fails naming it, not deep inside initialisation or generation."""
    problems = []
    if not isinstance(layer, nn.Module):
        problems.append(f"is a {type(layer).__name__}, not a torch.nn.Module")
    elif not isinstance(getattr(layer, "c_proj", None), nn.Linear):
        problems.append("has no `c_proj` nn.Linear (its output projection)")
    if not callable(getattr(type(layer), "kv_heads", None)):
        problems.append("has no `kv_heads(config)` classmethod")
    if problems:
        raise ModelConfigError(
            f"attention {name!r} ({type(layer).__module__}.{type(layer).__qualname__}) {' and '.join(problems)}; "
            "subclass santa.model.attention.CausalSelfAttention or see docs/plugins.md for the contract"
        )


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.mlp_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.mlp_dim, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = registry.build("santa.attention", config.attention, config.attention_params, config=config)
        check_attention_layer(self.attn, config.attention)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, mask: Tensor | None, cache: tuple[Tensor, Tensor, int] | None) -> Tensor:
        x = x + self.attn(self.ln_1(x), mask, cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = cast(
            "_Trunk",
            nn.ModuleDict(
                dict(
                    wte=nn.Embedding(config.vocab_size, config.n_embd),
                    wpe=nn.Embedding(config.n_positions, config.n_embd),
                    drop=nn.Dropout(config.dropout),
                    h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                    ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias),
                )
            ),
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as SantaCoder
        self.reset_parameters()

    # ------------------------------------------------------------------ init
    def reset_parameters(self) -> None:
        """Megatron/GPT-2 init: N(0, initializer_range) for Linear and Embedding weights, zero
        biases, unit LayerNorm; the two projections that write into the residual stream
        (attn.c_proj, mlp.c_proj) get std / sqrt(2 * n_layer), so the residual's variance does
        not grow with depth (2 such writes per layer). Same as HF GPTBigCode's _init_weights.
        On the meta device this touches no memory."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                bias = getattr(module, "bias", None)  # nn.Embedding has none
                if bias is not None:
                    nn.init.zeros_(bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        scaled = std / math.sqrt(2 * self.config.n_layer)
        for block in self.transformer.h:
            # An nn.Linear by the attention layer's contract (docs/plugins.md); torch types a
            # submodule found by name as ``Tensor | Module``.
            c_proj = cast(nn.Linear, block.attn.c_proj)
            nn.init.normal_(c_proj.weight, mean=0.0, std=scaled)
            nn.init.normal_(block.mlp.c_proj.weight, mean=0.0, std=scaled)

    # --------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: Tensor,
        targets: Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
        position_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> tuple[Tensor | None, Tensor | None]:
        """input_ids [B, T] -> (logits [B, T, vocab], None), or (None, loss) with ``targets``.

        targets: [B, T], already shifted (targets[:, t] is the token after input_ids[:, t]);
            -100 is ignored. The loss (mean over counted tokens, fp32 whatever the model's dtype)
            comes from a chunked, fused LM-head + cross-entropy that never holds the logits of
            more than a few hundred tokens, so no logits are returned with it; call again
            without targets (or use ``F.cross_entropy`` on those logits) when both are needed.
        kv_cache: keys/values of earlier calls; this call appends T positions to it.
        attention_mask: [B, S] with 1 for real tokens and 0 for (left) padding, covering the
            cached positions too (S = cached + T). Position ids then count real tokens only.
        position_ids: [B, T] or [T]; overrides the positions derived from the cache/mask.
        logits_to_keep: 0 keeps all positions, n > 0 only the last n (generation needs one, and
            the vocab projection is the largest matmul of a small model).
        """
        B, T = input_ids.shape
        start = kv_cache.length if kv_cache is not None else 0
        S = start + T
        if S > self.config.n_positions:
            raise ValueError(f"sequence length {S} exceeds n_positions={self.config.n_positions}")
        if kv_cache is not None and S > kv_cache.max_len:
            raise ValueError(f"KV cache holds {kv_cache.max_len} positions, {S} needed")
        if attention_mask is not None and attention_mask.shape != (B, S):
            raise ValueError(f"attention_mask must be [B, cached + T] = {[B, S]}, got {list(attention_mask.shape)}")

        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, start:]
            else:
                position_ids = torch.arange(start, S, device=input_ids.device)
        mask = self._attention_mask(T, start, attention_mask, input_ids.device)

        x = self.transformer.drop(self.transformer.wte(input_ids) + self.transformer.wpe(position_ids))
        for i, block in enumerate(self.transformer.h):
            cache = (kv_cache.k[i], kv_cache.v[i], start) if kv_cache is not None else None
            x = block(x, mask, cache)
        if kv_cache is not None:
            kv_cache.length = S
        if targets is not None:
            if logits_to_keep:
                raise ValueError("targets need every position's hidden state; leave logits_to_keep at 0")
            # The [B*T, vocab] logits are never materialized (santa.model.loss).
            loss = chunked_lm_head_cross_entropy(self.transformer.ln_f(x), self.lm_head.weight, targets)
            return None, loss
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        return self.lm_head(self.transformer.ln_f(x)), None

    @staticmethod
    def _attention_mask(T: int, start: int, attention_mask: Tensor | None, device: torch.device) -> Tensor | None:
        """The boolean [B|1, 1, T, S] mask shared by all layers, built once per forward; None means
        "plain causal" (T > 1, nothing cached) or "all visible" (T == 1), which SDPA handles
        without a mask tensor."""
        S = start + T
        padded = attention_mask is not None and not bool(attention_mask.all())
        if not padded and (start == 0 or T == 1):
            return None
        if T == 1 and attention_mask is not None:  # (the mask is there: padded, see above)
            # One query (decoding): it sees every non-padding key.
            return attention_mask.bool()[:, None, None, :]
        q_pos = torch.arange(start, S, device=device)[:, None]
        k_pos = torch.arange(S, device=device)[None, :]
        mask = (k_pos <= q_pos)[None, None]  # [1, 1, T, S]
        if padded and attention_mask is not None:
            # A padding query would see no key at all (softmax of nothing = NaN, which then leaks
            # through V into later rows); let it see itself. Its output is never read by real tokens.
            valid = attention_mask.bool()[:, None, None, :] | (k_pos == q_pos)[None, None]
            mask = mask & valid
        return mask

    # --------------------------------------------------------------- helpers
    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameters counted once (the tied wte/lm_head matrix once); works on the meta device."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def decay_parameter_names(self, decay_embeddings: bool = False) -> tuple[list[str], list[str]]:
        """(decay, no_decay) parameter names. Weight decay goes on Linear weight matrices only;
        biases and LayerNorm never decay. Embeddings (wte, tied to lm_head, and wpe) don't decay by
        default, as nanoGPT and HF; Megatron (BigCode's trainer) decays every >= 2-D tensor
        including them: ``decay_embeddings=True`` reproduces that."""
        embeddings = {id(self.transformer.wte.weight), id(self.transformer.wpe.weight)}
        linear_weights = {id(m.weight) for m in self.modules() if isinstance(m, nn.Linear)}
        decay: list[str] = []
        no_decay: list[str] = []
        for name, p in self.named_parameters():  # yields the tied matrix once, as transformer.wte
            if id(p) in embeddings:
                (decay if decay_embeddings else no_decay).append(name)
            elif id(p) in linear_weights:
                decay.append(name)
            else:
                no_decay.append(name)
        return decay, no_decay

    def configure_param_groups(self, weight_decay: float, decay_embeddings: bool = False) -> list[dict[str, Any]]:
        """AdamW parameter groups: ``torch.optim.AdamW(model.configure_param_groups(0.1), lr=...)``."""
        decay, no_decay = self.decay_parameter_names(decay_embeddings)
        params = dict(self.named_parameters())
        return [
            {"params": [params[n] for n in decay], "weight_decay": weight_decay},
            {"params": [params[n] for n in no_decay], "weight_decay": 0.0},
        ]
