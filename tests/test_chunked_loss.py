"""The chunked LM-head + cross-entropy against F.cross_entropy on full logits: loss and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from santa.model import GPT, GPTConfig
from santa.model.loss import chunked_lm_head_cross_entropy


def _inputs(n_tokens: int, C: int, V: int, masked: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n_tokens, C, generator=g)
    weight = torch.randn(V, C, generator=g) * 0.5
    targets = torch.randint(0, V, (n_tokens,), generator=g)
    targets[torch.rand(n_tokens, generator=g) < masked] = -100
    return hidden, weight, targets


def _reference(hidden, weight, targets, upcast_logits: bool = True):
    h = hidden.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    logits = h @ w.t()
    loss = F.cross_entropy(logits.float() if upcast_logits else logits, targets, ignore_index=-100)
    loss.backward()
    return loss.detach(), h.grad, w.grad


def _ours(hidden, weight, targets, **kw):
    h = hidden.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    loss = chunked_lm_head_cross_entropy(h, w, targets, **kw)
    loss.backward()
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
@pytest.mark.parametrize("masked", [0.0, 0.3])
def test_fp32_loss_and_grads_equal_unchunked(chunk: int, masked: float) -> None:
    hidden, weight, targets = _inputs(150, 32, 97, masked)
    ref = _reference(hidden, weight, targets)
    ours = _ours(hidden, weight, targets, chunk_tokens=chunk)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    if masked:
        ignored = targets == -100
        assert ignored.any() and bool((ours[1][ignored] == 0).all())


def test_batched_shape_and_scaled_upstream_gradient() -> None:
    """[B, T, C] hidden states, and an upstream gradient other than 1 (an accumulation factor,
    a loss scale) scales both gradients."""
    hidden, weight, targets = _inputs(2 * 40, 16, 50, 0.2, seed=3)
    h = hidden.view(2, 40, 16).clone().requires_grad_(True)
    w = weight.clone().requires_grad_(True)
    (chunked_lm_head_cross_entropy(h, w, targets.view(2, 40), chunk_tokens=9) * 0.25).backward()
    _, gh, gw = _reference(hidden, weight, targets)
    torch.testing.assert_close(h.grad.view(-1, 16), gh * 0.25, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(w.grad, gw * 0.25, rtol=1e-5, atol=1e-7)


def test_bf16_autocast_close_to_autocast_reference() -> None:
    """Under CPU bf16 autocast both project in bf16; ours accumulates the weight gradient in fp32
    over chunks, so it is at least as close to the fp32 truth as the unchunked autocast one."""
    hidden, weight, targets = _inputs(256, 64, 300, 0.1, seed=5)
    exact = _reference(hidden, weight, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = _reference(hidden, weight, targets)
        ours = _ours(hidden, weight, targets, chunk_tokens=50)
    assert ours[0].dtype == torch.float32 and ours[1].dtype == torch.float32 and ours[2].dtype == torch.float32
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-2, atol=1e-2)
    for ours_g, ref_g, exact_g in zip(ours[1:], ref[1:], exact[1:]):
        scale = exact_g.abs().max()
        assert (ours_g - ref_g).abs().max() < 0.03 * scale
        assert (ours_g - exact_g).abs().max() <= 1.5 * (ref_g - exact_g).abs().max() + 1e-3 * scale


def test_bf16_model_weights() -> None:
    """A model held in bf16 (no autocast): gradients come back in bf16, close to the reference."""
    hidden, weight, targets = _inputs(96, 32, 80, 0.0, seed=7)
    hb, wb = hidden.bfloat16(), weight.bfloat16()
    loss, gh, gw = _ours(hb, wb, targets, chunk_tokens=20)
    assert gh.dtype == torch.bfloat16 and gw.dtype == torch.bfloat16 and loss.dtype == torch.float32
    ref = _reference(hb.float(), wb.float(), targets)
    torch.testing.assert_close(loss, ref[0], rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(gh.float(), ref[1], rtol=5e-2, atol=2e-3)
    torch.testing.assert_close(gw.float(), ref[2], rtol=5e-2, atol=2e-3)


def test_no_grad_computes_only_the_loss_and_all_ignored_is_nan() -> None:
    hidden, weight, targets = _inputs(30, 8, 20, 0.0)
    with torch.no_grad():
        loss = chunked_lm_head_cross_entropy(hidden, weight, targets, chunk_tokens=4)
    torch.testing.assert_close(loss, F.cross_entropy(hidden @ weight.t(), targets))
    h = hidden.clone().requires_grad_(True)
    w = weight.clone().requires_grad_(True)
    none = chunked_lm_head_cross_entropy(h, w, torch.full((30,), -100))
    assert torch.isnan(none)  # as F.cross_entropy: 0 / 0
    none.backward()
    assert bool((h.grad == 0).all()) and bool((w.grad == 0).all())


def test_bad_targets_and_shapes_are_refused() -> None:
    hidden, weight, targets = _inputs(10, 8, 20, 0.0)
    with pytest.raises(IndexError, match=r"\[0, 20\)"):
        chunked_lm_head_cross_entropy(hidden, weight, torch.full((10,), 20))
    with pytest.raises(ValueError, match="targets"):
        chunked_lm_head_cross_entropy(hidden, weight, targets[:5])
    with pytest.raises(ValueError, match="weight"):
        chunked_lm_head_cross_entropy(hidden, weight[:, :4], targets)


def test_second_backward_is_refused() -> None:
    hidden, weight, targets = _inputs(10, 8, 20, 0.0)
    h = hidden.clone().requires_grad_(True)
    loss = chunked_lm_head_cross_entropy(h, weight, targets)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        loss.backward()


@pytest.mark.parametrize("attention", ["mqa", "mha"])
def test_model_loss_and_grads_equal_the_unfused_head(attention: str) -> None:
    """GPT.forward with targets (chunked) against the model's own logits + F.cross_entropy: the
    same loss and the same gradient for every parameter, tied embedding included."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=320, n_embd=32, n_layer=2, n_head=4, n_positions=64, attention=attention, dropout=0.0)
    model = GPT(cfg)
    ids = torch.randint(0, 320, (3, 20))
    targets = ids.roll(-1, dims=1)
    targets[:, -1] = -100
    targets[0, :5] = -100  # a FIM-style loss mask

    _, loss = model(ids, targets)
    assert _ is None
    loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    logits, _ = model(ids)
    ref = F.cross_entropy(logits.view(-1, 320), targets.view(-1), ignore_index=-100)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    for n, p in model.named_parameters():
        torch.testing.assert_close(ours[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)
