"""The vocabulary projection and cross-entropy fused, in chunks of tokens.

At SantaCoder's vocabulary (49,280) the logits of a 4 x 512 micro-batch are a [2048, 49280] fp32
tensor of 404 MB; an unfused step keeps it, its log-softmax and their gradient (three such tensors)
alive at once, more than the rest of a small model's activations together. Here the logits of at
most ``chunk_tokens`` tokens exist at any time: each chunk is projected, reduced to its loss, and,
when gradients are wanted, turned into its gradient (softmax - one-hot) and multiplied back into
the gradients of the hidden states and of the (tied) embedding matrix right away. The backward pass
then only scales those stored gradients by the incoming gradient: the same three matmuls as the
unfused pair (logits, d hidden, d weight), no recomputation.

Numerics: the matmuls run in the autocast dtype when autocast is on (bf16/fp16, as ``F.linear``
would), everything after them in fp32; the gradients are accumulated in fp32 and scaled by
1 / (number of counted tokens) only after the matmuls, so fp16 never sees the tiny per-token
values (softmax / n) that would underflow it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch
from torch import Tensor

# Logit elements per chunk: 2^24 fp32 = 64 MB (340 tokens at vocab 49280). On this CPU (1 thread,
# 2048 x 512 -> 49280, fwd + bwd) 340- and 680-token chunks were 1.09x faster than the unfused
# pair in fp32 and on par in bf16; 85-170 were slower in bf16, where each chunk adds a [V, C]
# term into the fp32 weight gradient (see the forward pass).
LOGITS_PER_CHUNK = 2**24


def _compute_dtype(t: Tensor) -> torch.dtype:
    device_type = t.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return t.dtype


_F = TypeVar("_F", bound=Callable[..., Any])


def _eager(fn: _F) -> _F:
    """``torch.compiler.disable(fn)`` with ``fn``'s type kept (torch leaves the decorator untyped)."""
    return cast(_F, torch.compiler.disable(fn))


class _ChunkedLMHeadCE(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        targets: Tensor,
        ignore_index: int,
        chunk_tokens: int,
        compute_dtype: torch.dtype,
    ) -> Tensor:
        N, C = hidden.shape
        V = weight.size(0)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # Only counted tokens are projected: FIM/padding masks skip their rows entirely.
        rows = (targets != ignore_index).nonzero().squeeze(1)
        n = rows.numel()
        h = hidden.index_select(0, rows).to(compute_dtype)
        t = targets.index_select(0, rows)
        if bool(((t < 0) | (t >= V)).any()):
            raise IndexError(f"target ids must be in [0, {V}) or ignore_index={ignore_index}")
        w = weight.to(compute_dtype)
        f32 = torch.float32
        low = compute_dtype != f32
        dev = hidden.device
        grad_h = torch.empty(n, C, dtype=f32, device=dev) if need_h else None
        grad_w = torch.zeros(V, C, dtype=f32, device=weight.device) if need_w else None
        loss_sum = torch.zeros((), dtype=f32, device=dev)
        # Scratch that every chunk reuses. A fresh tensor of this size per chunk (64 MB of logits,
        # a [V, C] weight-gradient term) is mapped and unmapped by the allocator each time and
        # pays its page faults again: ~0.5 ms per MB here, 50 of the 60 ms that adding a bf16
        # [V, C] term into the fp32 gradient took (mixed-dtype add_ allocates an fp32 copy).
        chunk_rows = min(n, chunk_tokens)
        logits_buf = torch.empty(chunk_rows, V, dtype=f32, device=dev)
        low_buf = torch.empty(chunk_rows, V, dtype=compute_dtype, device=dev) if low else None
        gw_low = torch.empty(V, C, dtype=compute_dtype, device=dev) if low and need_w else None
        gw_f32 = torch.empty(V, C, dtype=f32, device=dev) if low and need_w else None
        with torch.autocast(dev.type, enabled=False):
            for s in range(0, n, chunk_tokens):
                e = min(n, s + chunk_tokens)
                hc, tc = h[s:e], t[s:e]
                logits = logits_buf[: e - s]  # [c, V], fp32 whatever the compute dtype
                if low_buf is None:
                    torch.mm(hc, w.t(), out=logits)
                else:
                    logits.copy_(torch.mm(hc, w.t(), out=low_buf[: e - s]))
                target_logit = logits.gather(1, tc[:, None]).squeeze(1)
                # log-sum-exp and softmax from ONE exp pass, in place: torch.logsumexp followed
                # by exp(logits - lse) took 2.9x as long per chunk (340 x 49,280, one thread;
                # logsumexp allocates a shifted copy and exponentiates it, then exp again).
                row_max = logits.amax(dim=-1, keepdim=True)
                probs = logits.sub_(row_max).exp_()  # logits is consumed from here on
                row_sum = probs.sum(dim=-1, keepdim=True)
                lse = (row_max + row_sum.log()).squeeze(1)
                loss_sum += (lse - target_logit).sum()
                if not (need_h or need_w):
                    continue
                # d loss_i / d logits_i = softmax_i - onehot(target_i), built in place.
                probs.div_(row_sum)
                probs[torch.arange(e - s, device=probs.device), tc] -= 1.0
                d = probs if low_buf is None else low_buf[: e - s].copy_(probs)
                if grad_h is not None:
                    if low:
                        grad_h[s:e] = torch.mm(d, w)
                    else:
                        torch.mm(d, w, out=grad_h[s:e])
                if grad_w is not None:
                    if gw_low is None or gw_f32 is None:
                        grad_w.addmm_(d.t(), hc)
                    else:
                        # No fp32-output matmul for bf16 inputs on CPU: a [V, C] term in the
                        # compute dtype, widened into reused scratch, then accumulated in fp32.
                        torch.mm(d.t(), hc, out=gw_low)
                        grad_w.add_(gw_f32.copy_(gw_low))
        # Mean over counted tokens, as F.cross_entropy; no counted token gives nan as it does.
        loss = loss_sum / n
        scale = 1.0 / n if n else 0.0
        full_h = None
        if grad_h is not None:
            full_h = torch.zeros(N, C, dtype=f32, device=hidden.device)
            full_h.index_copy_(0, rows, grad_h.mul_(scale))
        if grad_w is not None:
            grad_w.mul_(scale)
        ctx.grads = (full_h, grad_w)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        if ctx.grads is None:
            raise RuntimeError(
                "backward ran twice through the chunked LM-head loss (retain_graph=True); its "
                "gradients are computed once, in the forward pass"
            )
        grad_h, grad_w = ctx.grads
        ctx.grads = None  # scaled in place below, so a second backward would be wrong
        h_dtype, w_dtype = ctx.dtypes
        if grad_h is not None:
            grad_h = grad_h.mul_(grad_out).to(h_dtype)
        if grad_w is not None:
            grad_w = grad_w.mul_(grad_out).to(w_dtype)
        return grad_h, grad_w, None, None, None, None


@_eager  # data-dependent row selection; compiled models call it eagerly
def chunked_lm_head_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    ignore_index: int = -100,
    chunk_tokens: int | None = None,
) -> Tensor:
    """``F.cross_entropy(hidden @ weight.T, targets, ignore_index=ignore_index)`` (mean over the
    counted tokens, fp32) and its gradients wrt ``hidden`` and ``weight``, without ever holding more
    than ``chunk_tokens`` rows of logits.

    hidden: [..., C]; weight: [V, C] (the tied embedding matrix); targets: [...] ids in [0, V) or
    ``ignore_index``. ``chunk_tokens`` defaults to ``LOGITS_PER_CHUNK // V`` tokens. Double
    backward (and a second backward with ``retain_graph=True``) is not supported.
    """
    C = hidden.size(-1)
    if weight.dim() != 2 or weight.size(1) != C:
        raise ValueError(f"weight must be [vocab, {C}], got {list(weight.shape)}")
    if targets.shape != hidden.shape[:-1]:
        raise ValueError(f"targets {list(targets.shape)} must match hidden {list(hidden.shape[:-1])}")
    if chunk_tokens is None:
        chunk_tokens = max(1, LOGITS_PER_CHUNK // weight.size(0))
    if chunk_tokens <= 0:
        raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
    return _ChunkedLMHeadCE.apply(
        hidden.reshape(-1, C), weight, targets.reshape(-1), ignore_index, chunk_tokens, _compute_dtype(hidden)
    )
