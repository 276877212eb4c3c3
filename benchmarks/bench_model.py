"""santa's GPT against HF GPTBigCodeForCausalLM (SDPA), same config and weights, in one run.

    .venv/bin/python benchmarks/bench_model.py                 # 6 x 512, 8 heads, vocab 49280, dropout 0.1
    .venv/bin/python benchmarks/bench_model.py --quick         # a smaller run for a smoke test
    .venv/bin/python benchmarks/bench_model.py --memory        # + peak memory of a training step
    .venv/bin/python benchmarks/bench_model.py --mqa-mha       # + MQA vs MHA decode at 2048, batch 64
    .venv/bin/python benchmarks/bench_model.py --profile       # + where a training step's time goes

Speed: a training step (fwd + bwd + AdamW, batch 4 x 512) in fp32 and in bf16 autocast (both
sides under the same ``torch.autocast``), and greedy generation of 128 tokens after a 128-token
prompt at batch 1 and 16, for MQA and MHA. Our weights are exported with ``export_hf`` and loaded by
transformers, so both sides compute the same function (the greedy outputs are compared). After a
warm-up, ours and HF's runs alternate; each repeat gives one ratio (HF's time / ours, from the
adjacent pair), and every ratio is printed as min / median / max over the repeats with the 1-minute
load average at the end of the measurement: on a shared machine only ratios taken side by side
mean anything.

Memory (``--memory``): each measurement runs in a fresh subprocess (santa and HF alike, the same
model config, batch and AdamW): one warm-up step creates the optimizer state, then the process's
resident set is read (VmRSS), its high-water mark reset (``echo 5 > /proc/self/clear_refs``) and one
more step run; the step's peak is VmHWM - VmRSS before it. glibc is told to serve every allocation
of 64 KiB or more by mmap (``MALLOC_MMAP_THRESHOLD_``), so a freed tensor leaves the resident set at
once and the high-water mark counts exactly the pages that were live together. tracemalloc sees no
tensor memory and the torch profiler's memory view is per-op, not a peak; the kernel's RSS
high-water mark is what the operating system actually had to provide.

MQA vs MHA (``--mqa-mha``): decode steps of batch 64 at the paper's context, the KV cache holding
2048 - 32 positions (filled with random keys/values: decode time depends on the cache's size, not
its content), 32 tokens timed, as generate() runs them (weights packed for the batch, logits of the
new position only). The model is 6 layers x 512, 8 heads (``--mqa-mha-layers``), the depth of the
training benchmark's model: MHA's cache is 3 GiB there, MQA's 384 MiB. Depth matters because the
cache is read once per layer while the 49,280-word vocabulary projection runs once per step. In
the 24-layer SantaCoder at batch 64 and 2,048 positions, attention over the cache is twice the
vocabulary projection's arithmetic even with MQA (13 vs 6.4 GMAC per step) and MHA's cache is 51 GB
read per step; at 2 layers (the default before) the projection is most of a step and hides part of
MQA's advantage (2 layers 1.75x, 6 layers 2.10x, median, one thread, CPU clock, load 5,
2026-12-07).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from santa.model import GPT, GPTConfig, KVCache, generate  # noqa: E402
from santa.model.generation import _packed_linears  # noqa: E402
from santa.model.hf import export_hf  # noqa: E402

VOCAB = 49280
TRAIN_BATCH = 4


@dataclass
class Row:
    task: str
    attention: str
    ours: float  # tokens/s, median
    hf: float
    ratios: tuple[float, float, float]  # ours/HF speed: min, median, max over the repeats
    load: float  # 1-minute load average when the measurement ended
    ours_name: str = "santa"
    hf_name: str = "HF"


# Wall-clock by default. On a shared machine, ``--threads 1 --clock cpu`` measures the CPU time of
# this process instead, which other processes' load barely moves (with 2+ threads OpenMP's
# spin-waiting would count too, so use it with one thread).
_clock: Callable[[], float] = time.perf_counter


def interleaved(
    ours: Callable[[], None], ref: Callable[[], None], warmup: int, repeat: int
) -> tuple[list[float], list[float]]:
    """Seconds of each repeat of ``ours`` and ``ref``, run alternately (who goes first alternates
    too) so drift and load hit both alike."""
    for _ in range(warmup):
        ours()
        ref()
    t_ours: list[float] = []
    t_ref: list[float] = []
    for i in range(repeat):
        pair = ((ours, t_ours), (ref, t_ref))
        for fn, acc in pair if i % 2 == 0 else pair[::-1]:
            t = _clock()
            fn()
            acc.append(_clock() - t)
    return t_ours, t_ref


def make_row(task: str, attention: str, tokens: int, t_ours: list[float], t_ref: list[float], **names: str) -> Row:
    ratios = sorted(r / o for o, r in zip(t_ours, t_ref))
    return Row(
        task,
        attention,
        tokens / statistics.median(t_ours),
        tokens / statistics.median(t_ref),
        (ratios[0], statistics.median(ratios), ratios[-1]),
        os.getloadavg()[0],
        **names,
    )


def _load_hf(path: Path):
    from transformers import GPTBigCodeForCausalLM

    hf = GPTBigCodeForCausalLM.from_pretrained(path, attn_implementation="sdpa", local_files_only=True)
    hf.generation_config.eos_token_id = None  # random weights: never stop early, on either side
    return hf


def _autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def _train_step(model, x: torch.Tensor, precision: str) -> Callable[[], None]:
    """One fwd + bwd + AdamW step of santa's GPT or HF's GPTBigCode (same AdamW, PyTorch's default
    implementation, on both sides: this compares the models)."""
    if isinstance(model, GPT):
        y = x.roll(-1, dims=1)
        y[:, -1] = -100  # HF shifts labels internally: both predict seq - 1 tokens
        opt = torch.optim.AdamW(model.configure_param_groups(0.1), lr=1e-4, betas=(0.9, 0.95))
        loss_of = lambda: model(x, y)[1]  # noqa: E731
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
        loss_of = lambda: model(input_ids=x, labels=x).loss  # noqa: E731

    def step() -> None:
        with _autocast(precision):
            loss = loss_of()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _train_steps(ours: GPT, hf, x: torch.Tensor, precision: str) -> tuple[Callable[[], None], Callable[[], None]]:
    return _train_step(ours, x, precision), _train_step(hf, x, precision)


def bench_training(model: GPT, hf_dir: Path, seq: int, precision: str, warmup: int, repeat: int) -> Row:
    ours = copy.deepcopy(model).train()  # the generation benchmark later uses the untrained weights
    hf = _load_hf(hf_dir).train()
    x = torch.randint(0, VOCAB, (TRAIN_BATCH, seq), generator=torch.Generator().manual_seed(0))
    t_ours, t_hf = interleaved(*_train_steps(ours, hf, x, precision), warmup, repeat)
    return make_row(f"train {TRAIN_BATCH}x{seq} {precision}", model.config.attention, TRAIN_BATCH * seq, t_ours, t_hf)


def profile_training(model: GPT, hf_dir: Path, seq: int, precision: str) -> str:
    """Where one training step's CPU time goes, santa and HF side by side: matrix multiplies
    (incl. fused attention) against everything else. If HF's own step is mostly the same matmuls
    that santa also has to do, no model-side change can beat HF by more than total / matmul."""
    from torch.profiler import ProfilerActivity, profile

    ours = copy.deepcopy(model).train()
    hf = _load_hf(hf_dir).train()
    x = torch.randint(0, VOCAB, (TRAIN_BATCH, seq), generator=torch.Generator().manual_seed(0))
    steps = _train_steps(ours, hf, x, precision)
    gemm_ops = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_dot_product_flash")
    lines = [
        f"profile, train {TRAIN_BATCH}x{seq} {precision} {model.config.attention} (self CPU time of one step):",
        "| side | step ms | matmul + attention ms | share | top other ops (ms) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, step in zip(("santa", "HF"), steps):
        step()  # warm-up (optimizer state)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
        total = sum(e.self_cpu_time_total for e in events) / 1e3
        gemm = sum(e.self_cpu_time_total for e in events if e.key.startswith(gemm_ops)) / 1e3
        others = sorted((e for e in events if not e.key.startswith(gemm_ops)), key=lambda e: -e.self_cpu_time_total)
        top = ", ".join(f"{e.key.removeprefix('aten::')} {e.self_cpu_time_total / 1e3:.0f}" for e in others[:5])
        lines.append(f"| {name} | {total:.0f} | {gemm:.0f} | {gemm / total:.0%} | {top} |")
    return "\n".join(lines)


def bench_generation(model: GPT, hf, batch: int, prompt: int, new: int, warmup: int, repeat: int) -> tuple[Row, bool]:
    ids = torch.randint(0, VOCAB, (batch, prompt), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    out: dict[str, torch.Tensor] = {}

    def run_ours() -> None:
        out["ours"] = generate(model, ids, new)

    def run_hf() -> None:
        with torch.inference_mode():
            out["hf"] = hf.generate(
                ids, attention_mask=mask, max_new_tokens=new, do_sample=False, use_cache=True, pad_token_id=0
            )

    t_ours, t_hf = interleaved(run_ours, run_hf, warmup, repeat)
    same = out["ours"].shape == out["hf"].shape and bool((out["ours"] == out["hf"]).all())
    row = make_row(f"generate b{batch} {prompt}+{new}", model.config.attention, batch * new, t_ours, t_hf)
    return row, same


def bench_mqa_vs_mha(
    layers: int, batch: int, context: int, steps: int, repeat: int, width: int = 512, heads: int = 8
) -> Row:
    """Decode ``steps`` tokens at batch ``batch`` with a KV cache ending at ``context`` positions:
    MQA (``ours``) against MHA (``ref``), santa's model for both."""
    models: dict[str, tuple[GPT, KVCache]] = {}
    for attention in ("mqa", "mha"):
        cfg = GPTConfig(
            vocab_size=VOCAB, n_positions=context, n_embd=width, n_layer=layers, n_head=heads, attention=attention
        )
        torch.manual_seed(0)
        model = GPT(cfg).eval()
        cache = KVCache.for_model(model, batch, context)
        for t in (*cache.k, *cache.v):
            t.normal_()
        models[attention] = (model, cache)
    token = torch.randint(0, VOCAB, (batch, 1))

    def run(attention: str) -> Callable[[], None]:
        model, cache = models[attention]

        @torch.inference_mode()
        def decode() -> None:
            # The step as generate() runs it: the linears multiply with weights packed for the batch.
            with _packed_linears(model, batch):
                cache.length = context - steps
                for _ in range(steps):
                    model(token, kv_cache=cache, logits_to_keep=1)

        return decode

    t_mqa, t_mha = interleaved(run("mqa"), run("mha"), 1, repeat)
    mib = {a: models[a][1].cache_bytes / 2**20 for a in models}
    return make_row(
        f"decode b{batch} @{context} ({layers}L, cache {mib['mqa']:.0f}/{mib['mha']:.0f} MiB)",
        "both",
        batch * steps,
        t_mqa,
        t_mha,
        ours_name="MQA",
        hf_name="MHA",
    )


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


# ---------------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _memory_child(
    side: str, attention: str, layers: int, seq: int, precision: str, hf_dir: str, dropout: float
) -> None:
    """Runs in a fresh process: prints one JSON line with the step's peak above its baseline."""
    import gc

    if side == "hf":
        model = _load_hf(Path(hf_dir)).train()
    else:
        cfg = GPTConfig(
            vocab_size=VOCAB,
            n_positions=1024,
            n_embd=512,
            n_layer=layers,
            n_head=8,
            attention=attention,
            dropout=dropout,
        )
        torch.manual_seed(0)
        model = GPT(cfg).train()
    x = torch.randint(0, VOCAB, (TRAIN_BATCH, seq), generator=torch.Generator().manual_seed(0))
    step = _train_step(model, x, precision)
    step()  # AdamW state exists from here on
    gc.collect()
    base = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    step()
    peak = _status_kib("VmHWM")
    print(
        json.dumps({"side": side, "base_mib": base / 1024, "peak_mib": peak / 1024, "step_mib": (peak - base) / 1024})
    )


def measure_memory(attention: str, layers: int, seq: int, precision: str, dropout: float, tmp: Path) -> dict[str, dict]:
    cfg = GPTConfig(
        vocab_size=VOCAB, n_positions=1024, n_embd=512, n_layer=layers, n_head=8, attention=attention, dropout=dropout
    )
    hf_dir = export_hf(GPT(cfg), tmp / f"mem-{attention}-{dropout}", bos_token_id=49152, eos_token_id=49152)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    out: dict[str, dict] = {}
    for side in ("santa", "hf"):
        cmd = [
            sys.executable,
            __file__,
            "--_memory-child",
            side,
            attention,
            str(layers),
            str(seq),
            precision,
            str(hf_dir),
            str(dropout),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if res.returncode != 0:
            raise RuntimeError(f"memory measurement {side} {attention} failed:\n{res.stderr[-2000:]}")
        out[side] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> list[Row]:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_memory-child":
        side, attention, layers, seq, precision, hf_dir, dropout = argv[1:8]
        _memory_child(side, attention, int(layers), int(seq), precision, hf_dir, float(dropout))
        return []
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 layers, shorter sequences, fewer repeats")
    p.add_argument("--attention", nargs="+", default=["mqa", "mha"])
    p.add_argument(
        "--precision",
        nargs="+",
        default=["fp32", "bf16"],
        choices=["fp32", "bf16"],
        help="training step precision(s); bf16 = torch.autocast(bfloat16) on both sides",
    )
    p.add_argument("--repeat", type=int, default=None, help="timed repeats per measurement")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-generate", action="store_true")
    p.add_argument("--memory", action="store_true", help="peak memory of a training step, fresh process each")
    p.add_argument(
        "--memory-dropout",
        type=float,
        nargs="+",
        default=[0.1, 0.0],
        help="dropout of the memory runs: 0.1 is the paper's (CPU SDPA then keeps the attention "
        "weights), 0.0 the demo's (fused kernel)",
    )
    p.add_argument("--profile", action="store_true", help="matmul share of a training step, santa and HF")
    p.add_argument("--mqa-mha", action="store_true", help="MQA vs MHA decode at batch 64, context 2048")
    p.add_argument("--mqa-mha-layers", type=int, default=6, help="depth of the MQA vs MHA model (default 6)")
    p.add_argument("--kernels", action="store_true", help="also time the SDPA variants for MQA")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
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
        layers, seq, prompt, new, gen_batches, repeat = 2, 128, 32, 32, (1, 16), args.repeat or 3
    else:
        layers, seq, prompt, new, gen_batches, repeat = 6, 512, 128, 128, (1, 16), args.repeat or 5

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {layers} layers x 512, 8 heads, "
        f"vocab {VOCAB}; train {TRAIN_BATCH}x{seq}; generate {prompt}+{new}; {repeat} interleaved repeats; "
        f"{args.clock} clock; load average at start {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if args.kernels:
        print(bench_attention_kernels(), flush=True)
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for attention in args.attention:
            cfg = GPTConfig(
                vocab_size=VOCAB, n_positions=1024, n_embd=512, n_layer=layers, n_head=8, attention=attention
            )
            torch.manual_seed(0)
            model = GPT(cfg)
            hf_dir = export_hf(model, Path(tmp) / attention, bos_token_id=49152, eos_token_id=49152)
            if args.memory:
                for dropout in args.memory_dropout:
                    for precision in args.precision:
                        m = measure_memory(attention, layers, seq, precision, dropout, Path(tmp))
                        s, h = m["santa"]["step_mib"], m["hf"]["step_mib"]
                        line = (
                            f"peak memory of a training step {TRAIN_BATCH}x{seq} {precision} {attention} dropout {dropout}: "
                            f"santa {s:.0f} MiB, HF {h:.0f} MiB above the model + AdamW state ({1 - s / h:.0%} lower); "
                            f"process peaks {m['santa']['peak_mib']:.0f} / {m['hf']['peak_mib']:.0f} MiB"
                        )
                        notes.append(line)
                        print(line, flush=True)
            if not args.skip_train:
                for precision in args.precision:
                    rows.append(bench_training(model, hf_dir, seq, precision, warmup=1, repeat=repeat))
                    print(_fmt(rows[-1]), flush=True)
                    if args.profile:
                        notes.append(profile_training(model, hf_dir, seq, precision))
                        print(notes[-1], flush=True)
            if not args.skip_generate:
                model.eval()
                hf = _load_hf(hf_dir).eval()
                for b in gen_batches:
                    row, same = bench_generation(model, hf, b, prompt, new, warmup=1, repeat=repeat)
                    rows.append(row)
                    notes.append(f"greedy outputs {row.attention} {row.task}: {'identical' if same else 'DIFFERENT'}")
                    print(_fmt(row), flush=True)
    if args.mqa_mha:
        ctx, steps = (512, 8) if args.quick else (2048, 32)
        rows.append(bench_mqa_vs_mha(args.mqa_mha_layers, 64, ctx, steps, repeat))
        print(_fmt(rows[-1]), flush=True)
    print()
    print(table(rows))
    for note in notes:
        print(note)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return rows


def _fmt(r: Row) -> str:
    lo, med, hi = r.ratios
    return (
        f"{r.task:<28} {r.attention:<4} {r.ours_name} {r.ours:9.1f} tok/s   {r.hf_name} {r.hf:9.1f} tok/s   "
        f"{r.ours_name}/{r.hf_name} {lo:.2f} / {med:.2f} / {hi:.2f}x (min/median/max)   load {r.load:.2f}"
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| task | attention | a | a tok/s | b | b tok/s | a/b speed min / median / max | load |",
        "|---|---|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lo, med, hi = r.ratios
        lines.append(
            f"| {r.task} | {r.attention} | {r.ours_name} | {r.ours:.1f} | {r.hf_name} | {r.hf:.1f} | "
            f"{lo:.2f} / **{med:.2f}** / {hi:.2f}x | {r.load:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
