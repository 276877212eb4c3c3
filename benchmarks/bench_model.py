"""santa's GPT against HF GPTBigCodeForCausalLM (SDPA), same config and weights, in one run.

    .venv/bin/python benchmarks/bench_model.py            # 6 x 512, 8 heads, vocab 49280, fp32
    .venv/bin/python benchmarks/bench_model.py --quick    # a smaller run for a smoke test

Measures a training step (fwd + bwd + AdamW, batch 4 x 512) and greedy generation of 128 tokens
after a 128-token prompt at batch 1 and 16, for MQA and MHA. Our weights are exported with
``export_hf`` and loaded by transformers, so both sides compute the same function (the greedy
outputs are compared). Ours and HF's runs alternate, after a warm-up, and the median of the repeats
is reported: timings on a shared machine drift, ratios taken in one run are what to compare.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from santa.model import GPT, GPTConfig, generate  # noqa: E402
from santa.model.hf import export_hf  # noqa: E402


@dataclass
class Row:
    task: str
    attention: str
    ours: float  # tokens/s
    hf: float

    @property
    def ratio(self) -> float:
        return self.ours / self.hf


# Wall-clock by default. On a shared machine, ``--threads 1 --clock cpu`` measures the CPU time of
# this process instead, which other processes' load barely moves (with 2+ threads OpenMP's
# spin-waiting would count too, so use it with one thread).
_clock: Callable[[], float] = time.perf_counter


def _median_pair(ours: Callable[[], None], hf: Callable[[], None], warmup: int, repeat: int) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``hf``, run alternately so drift hits both alike."""
    for _ in range(warmup):
        ours()
        hf()
    t_ours: list[float] = []
    t_hf: list[float] = []
    for _ in range(repeat):
        for fn, acc in ((ours, t_ours), (hf, t_hf)):
            t = _clock()
            fn()
            acc.append(_clock() - t)
    return statistics.median(t_ours), statistics.median(t_hf)


def _load_hf(path: Path):
    from transformers import GPTBigCodeForCausalLM

    hf = GPTBigCodeForCausalLM.from_pretrained(path, attn_implementation="sdpa", local_files_only=True)
    hf.generation_config.eos_token_id = None  # random weights: never stop early, on either side
    return hf


def bench_training(model: GPT, hf_dir: Path, batch: int, seq: int, warmup: int, repeat: int) -> Row:
    cfg = model.config
    ours = copy.deepcopy(model)  # the generation benchmark later uses the untrained weights
    hf = _load_hf(hf_dir)
    ours.train()
    hf.train()
    x = torch.randint(0, cfg.vocab_size, (batch, seq))
    y = x.roll(-1, dims=1)
    y[:, -1] = -100  # HF shifts labels internally: both predict seq - 1 tokens
    # The same AdamW (PyTorch's default implementation) on both sides: this compares the models.
    opt_ours = torch.optim.AdamW(ours.configure_param_groups(0.1), lr=1e-4, betas=(0.9, 0.95))
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)

    def step_ours() -> None:
        _, loss = ours(x, y)
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_hf() -> None:
        loss = hf(input_ids=x, labels=x).loss
        loss.backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)

    t_ours, t_hf = _median_pair(step_ours, step_hf, warmup, repeat)
    tokens = batch * seq
    return Row(f"train {batch}x{seq}", cfg.attention, tokens / t_ours, tokens / t_hf)


def bench_generation(
    model: GPT, hf, batch: int, prompt: int, new: int, warmup: int, repeat: int
) -> tuple[Row, bool]:
    torch.manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt))
    mask = torch.ones_like(ids)
    out: dict[str, torch.Tensor] = {}

    def run_ours() -> None:
        out["ours"] = generate(model, ids, new)

    def run_hf() -> None:
        with torch.inference_mode():
            out["hf"] = hf.generate(
                ids, attention_mask=mask, max_new_tokens=new, do_sample=False, use_cache=True, pad_token_id=0
            )

    t_ours, t_hf = _median_pair(run_ours, run_hf, warmup, repeat)
    same = out["ours"].shape == out["hf"].shape and bool((out["ours"] == out["hf"]).all())
    tokens = batch * new
    return Row(f"generate b{batch} {prompt}+{new}", model.config.attention, tokens / t_ours, tokens / t_hf), same


def bench_attention_kernels(repeat: int = 10) -> str:
    """How to run SDPA for MQA on CPU (the choice santa.model.attention documents): expanding the
    one key/value head to n_head views, ``enable_gqa=True``, or folding the query heads into the
    query-length axis (a view when there is one query token, as in decoding)."""
    import torch.nn.functional as F

    def median_ms(fn: Callable[[], object]) -> float:
        fn()
        times = []
        for _ in range(repeat):
            t = _clock()
            fn()
            times.append(_clock() - t)
        return 1e3 * statistics.median(times)

    H, D = 8, 64
    lines = ["| case | expand | enable_gqa | fold heads |", "|---|---:|---:|---:|"]
    # Training shape, fwd + bwd, causal. Folding needs an explicit [H*T, T] mask here.
    B, T = 4, 512
    q = torch.randn(B, H, T, D, requires_grad=True)
    k = torch.randn(B, 1, T, D, requires_grad=True)
    v = torch.randn(B, 1, T, D, requires_grad=True)
    fold_mask = torch.ones(T, T, dtype=torch.bool).tril().repeat(H, 1)

    def train(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        return lambda: fn().sum().backward()

    sdpa = F.scaled_dot_product_attention
    row = [
        median_ms(train(lambda: sdpa(q, k.expand(B, H, T, D), v.expand(B, H, T, D), is_causal=True))),
        median_ms(train(lambda: sdpa(q, k, v, is_causal=True, enable_gqa=True))),
        median_ms(train(lambda: sdpa(q.reshape(B, 1, H * T, D), k, v, attn_mask=fold_mask))),
    ]
    lines.append(f"| train fwd+bwd {B}x{T}, causal (ms) | " + " | ".join(f"{x:.1f}" for x in row) + " |")
    # Decoding shape: one query token against a 256-token cache.
    with torch.inference_mode():
        for B in (1, 16):
            S = 256
            q1 = torch.randn(B, H, 1, D)
            k1 = torch.randn(B, 1, S, D)
            v1 = torch.randn(B, 1, S, D)
            row = [
                median_ms(lambda: sdpa(q1, k1.expand(B, H, S, D), v1.expand(B, H, S, D))),
                median_ms(lambda: sdpa(q1, k1, v1, enable_gqa=True)),
                median_ms(lambda: sdpa(q1.view(B, 1, H, D), k1, v1)),
            ]
            lines.append(f"| decode b{B}, 1 query x {S} keys (ms) | " + " | ".join(f"{x:.3f}" for x in row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 layers, shorter sequences, fewer repeats")
    p.add_argument("--attention", nargs="+", default=["mqa", "mha"])
    p.add_argument("--repeat", type=int, default=None, help="timed repeats per measurement (median)")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-generate", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--kernels", action="store_true", help="also time the SDPA variants for MQA")
    p.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="cpu: this process's CPU time (robust to other load; use with --threads 1)",
    )
    args = p.parse_args(argv)

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter

    if args.quick:
        layers, seq, prompt, new, gen_batches, repeat = 2, 128, 32, 32, (1, 16), args.repeat or 2
    else:
        layers, seq, prompt, new, gen_batches, repeat = 6, 512, 128, 128, (1, 16), args.repeat or 3
    train_batch = 4

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {layers} layers x 512, 8 heads, "
        f"vocab 49280, fp32; train {train_batch}x{seq}; generate {prompt}+{new}; median of {repeat}; "
        f"{args.clock} clock",
        flush=True,
    )
    if args.kernels:
        print(bench_attention_kernels(), flush=True)
    rows: list[Row] = []
    matches: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for attention in args.attention:
            cfg = GPTConfig(
                vocab_size=49280, n_positions=1024, n_embd=512, n_layer=layers, n_head=8, attention=attention
            )
            torch.manual_seed(0)
            model = GPT(cfg)
            hf_dir = export_hf(model, Path(tmp) / attention, bos_token_id=49152, eos_token_id=49152)
            if not args.skip_train:
                rows.append(bench_training(model, hf_dir, train_batch, seq, warmup=1, repeat=repeat))
                print(_fmt(rows[-1]), flush=True)
            if not args.skip_generate:
                model.eval()
                hf = _load_hf(hf_dir).eval()
                for b in gen_batches:
                    row, same = bench_generation(model, hf, b, prompt, new, warmup=1, repeat=repeat)
                    rows.append(row)
                    matches.append(f"{row.attention} {row.task}: {'identical' if same else 'DIFFERENT'}")
                    print(_fmt(row), flush=True)
    print()
    print(table(rows))
    if matches:
        print("greedy outputs ours vs HF: " + "; ".join(matches))
    return rows


def _fmt(r: Row) -> str:
    return f"{r.task:<24} {r.attention:<4} ours {r.ours:9.1f} tok/s   hf {r.hf:9.1f} tok/s   ours/hf {r.ratio:5.2f}x"


def table(rows: list[Row]) -> str:
    lines = [
        "| task | attention | ours tok/s | HF tok/s | ours/HF |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.task} | {r.attention} | {r.ours:.1f} | {r.hf:.1f} | {r.ratio:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
