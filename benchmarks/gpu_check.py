"""The GPU check of issue 13: SantaCoder 1.1B training throughput, MFU and peak memory, and
generation speed against HF GPTBigCode, on one GPU in a few minutes.

    bash benchmarks/gpu_check.sh                      # what to run on the GPU machine
    python benchmarks/gpu_check.py --tiny --device cpu --compile off   # the CPU smoke test

Training (fwd + bwd + clip + AdamW step on random tokens, micro-batch x 2048): bf16-mixed and
fp16-mixed (GradScaler), SDPA restricted to the flash kernel (reported when it refuses), activation
checkpointing per block, fused AdamW, each eager and with ``torch.compile`` of every block
(regional compilation: the 24 identical blocks share one compiled graph). Tokens/s over the timed
steps after warm-up; MFU = tokens/s x model FLOPs per token / the GPU's dense bf16 peak, model
FLOPs per token = 6 x (non-embedding parameters + the vocabulary projection) + 12 x layers x width
x sequence (PaLM's formula; activation recomputation is not counted as useful work).

Generation: greedy, 128 new tokens after a 128-token prompt, batch 16 and 64, bf16 weights on both
sides (santa's ``generate`` and HF's ``generate`` with SDPA), interleaved repeats; ratio = santa / HF.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from santa.model import GPT, GPTConfig, generate, santacoder_1b  # noqa: E402

# Dense (no sparsity) bf16/fp16 tensor-core peaks, TFLOP/s, by a substring of the device name.
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "H800": 989.4, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


@dataclass
class TrainResult:
    precision: str
    compiled: bool
    tokens_per_s: float
    step_s: float
    mfu: float | None
    peak_mib: float
    flash: str
    first_step_s: float
    final_loss: float


@dataclass
class GenResult:
    batch: int
    santa_tokens_per_s: float
    hf_tokens_per_s: float
    ratio_min: float
    ratio_median: float
    ratio_max: float
    identical: bool


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # the process's resident peak on CPU
    return float("nan")


def flops_per_token(model: GPT, seq: int) -> float:
    cfg = model.config
    n = model.num_parameters(exclude_embeddings=True) + cfg.vocab_size * cfg.n_embd
    return 6.0 * n + 12.0 * cfg.n_layer * cfg.n_embd * seq


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def _flash_only() -> Any:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION])


def build_training_model(cfg: GPTConfig, device: torch.device, compiled: bool, checkpointing: bool) -> GPT:
    torch.manual_seed(0)
    model = GPT(cfg).to(device).train()
    if compiled:
        for block in model.transformer.h:
            block.compile()
    if checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

        block_type = type(model.transformer.h[0])
        apply_activation_checkpointing(model, check_fn=lambda m: isinstance(m, block_type))
    return model


def bench_training(
    cfg: GPTConfig,
    device: torch.device,
    precision: str,
    compiled: bool,
    *,
    micro_batch: int,
    seq: int,
    warmup: int,
    steps: int,
    checkpointing: bool,
    peak: float | None,
) -> TrainResult:
    model = build_training_model(cfg, device, compiled, checkpointing)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    opt = torch.optim.AdamW(model.configure_param_groups(0.1), lr=2e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (micro_batch, seq + 1), generator=g).to(device)
    inputs, targets = x[:, :-1], x[:, 1:]
    loss_box: list[torch.Tensor] = []

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype):
            _, loss = model(inputs, targets)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        loss_box[:] = [loss.detach()]

    flash = "flash"
    try:
        with _flash_only():
            sync(device)
            t0 = time.perf_counter()
            step()
            sync(device)
    except RuntimeError as exc:  # no flash kernel for this case: say so, measure the default choice
        flash = f"refused ({str(exc).splitlines()[0][:120]}); default SDPA"
    ctx = _flash_only if flash == "flash" else contextlib.nullcontext
    with ctx():
        if flash != "flash":
            t0 = time.perf_counter()
            step()
            sync(device)
        first = time.perf_counter() - t0
        for _ in range(max(0, warmup - 1)):
            step()
        sync(device)
        reset_peak(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        elapsed = time.perf_counter() - t0
    tps = steps * micro_batch * seq / elapsed
    mfu = tps * flops_per_token(model, seq) / peak if peak else None
    result = TrainResult(
        precision, compiled, tps, elapsed / steps, mfu, peak_mib(device), flash, first, float(loss_box[0])
    )
    # Free the model and optimizer before the next configuration builds its own.
    model = opt = None  # type: ignore[assignment]
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def hf_twin(model: GPT, device: torch.device, dtype: torch.dtype) -> Any:
    """HF GPTBigCodeForCausalLM with ``model``'s weights, built in memory (no files)."""
    from transformers import GPTBigCodeForCausalLM

    from santa.model.hf import to_hf_config, to_hf_state_dict

    hf_cfg = to_hf_config(model.config, bos_token_id=0, eos_token_id=0)
    hf_cfg._attn_implementation = "sdpa"
    hf = GPTBigCodeForCausalLM(hf_cfg)
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(model), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied
    if missing or unexpected:
        raise RuntimeError(f"HF twin does not match: missing {missing[:5]}, unexpected {unexpected[:5]}")
    hf.tie_weights()
    hf.generation_config.eos_token_id = None  # random weights: never stop early
    return hf.to(device=device, dtype=dtype).eval()


def bench_generation(
    cfg: GPTConfig, device: torch.device, dtype: torch.dtype, batches: list[int], prompt: int, new: int, repeat: int
) -> list[GenResult]:
    torch.manual_seed(0)
    model = GPT(cfg)
    hf = hf_twin(model, device, dtype)
    model = model.to(device=device, dtype=dtype).eval()
    results = []
    for batch in batches:
        ids = torch.randint(0, cfg.vocab_size, (batch, prompt), generator=torch.Generator().manual_seed(batch)).to(
            device
        )
        mask = torch.ones_like(ids)
        out: dict[str, torch.Tensor] = {}

        def ours() -> None:
            out["santa"] = generate(model, ids, new)

        def theirs() -> None:
            with torch.inference_mode():
                out["hf"] = hf.generate(
                    ids, attention_mask=mask, max_new_tokens=new, do_sample=False, use_cache=True, pad_token_id=0
                )

        times: dict[str, list[float]] = {"santa": [], "hf": []}
        ours(), theirs()  # warm-up
        for i in range(repeat):
            pair = [("santa", ours), ("hf", theirs)]
            for name, fn in pair if i % 2 == 0 else pair[::-1]:
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                times[name].append(time.perf_counter() - t0)
        ratios = sorted(h / s for s, h in zip(times["santa"], times["hf"]))
        tokens = batch * new
        same = out["santa"].shape == out["hf"].shape and bool((out["santa"] == out["hf"]).all())
        results.append(
            GenResult(
                batch,
                tokens / statistics.median(times["santa"]),
                tokens / statistics.median(times["hf"]),
                ratios[0],
                statistics.median(ratios),
                ratios[-1],
                same,
            )
        )
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a 2-layer x 64 model and short runs (CPU smoke test)")
    p.add_argument("--precision", nargs="+", default=["bf16", "fp16"], choices=["bf16", "fp16"])
    p.add_argument("--compile", choices=["both", "on", "off"], default="both")
    p.add_argument("--micro-batch", type=int, default=None)
    p.add_argument("--seq", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--no-checkpointing", action="store_true")
    p.add_argument("--gen-batches", type=int, nargs="+", default=[16, 64])
    p.add_argument("--gen-repeat", type=int, default=None)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-generate", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=None, help="override the device's dense bf16 peak")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device (use --device cpu --tiny for the smoke test)")
    if args.tiny:
        cfg = GPTConfig(vocab_size=512, n_positions=128, n_embd=64, n_layer=2, n_head=4, dropout=0.0)
        seq, micro, warmup, steps, prompt, new, repeat = 64, 2, 1, 2, 16, 8, 1
    else:
        cfg = santacoder_1b()
        seq, micro, warmup, steps, prompt, new, repeat = 2048, 8, 3, 10, 128, 128, 3
    seq = args.seq or seq
    micro = args.micro_batch or micro
    warmup = args.warmup if args.warmup is not None else warmup
    steps = args.steps or steps
    repeat = args.gen_repeat or repeat
    peak = peak_flops(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(
        f"gpu_check: {name}; torch {torch.__version__}; model {cfg.n_layer} x {cfg.n_embd}, {cfg.n_head} heads, "
        f"{cfg.attention}, vocab {cfg.vocab_size}; train micro-batch {micro} x {seq}, {warmup} warm-up + {steps} timed steps; "
        f"peak {peak / 1e12 if peak else float('nan'):.1f} TFLOP/s",
        flush=True,
    )
    report: dict[str, Any] = {
        "device": name,
        "torch": torch.__version__,
        "config": cfg.to_dict(),
        "train": [],
        "generate": [],
    }
    if not args.skip_train:
        compiles = {"both": [False, True], "on": [True], "off": [False]}[args.compile]
        print(
            "| precision | torch.compile | tokens/s | step s | MFU | peak MiB | SDPA | first step s | loss |",
            flush=True,
        )
        print("|---|---|---:|---:|---:|---:|---|---:|---:|", flush=True)
        for compiled in compiles:
            for precision in args.precision:
                r = bench_training(
                    cfg,
                    device,
                    precision,
                    compiled,
                    micro_batch=micro,
                    seq=seq,
                    warmup=warmup,
                    steps=steps,
                    checkpointing=not args.no_checkpointing,
                    peak=peak,
                )
                report["train"].append(asdict(r))
                mfu = f"{r.mfu:.1%}" if r.mfu is not None else "n/a"
                print(
                    f"| {r.precision}-mixed | {'yes' if r.compiled else 'no'} | {r.tokens_per_s:,.0f} | {r.step_s:.3f} | {mfu} | "
                    f"{r.peak_mib:,.0f} | {r.flash} | {r.first_step_s:.1f} | {r.final_loss:.3f} |",
                    flush=True,
                )
    if not args.skip_generate:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        print(
            f"generation, greedy {prompt} + {new}, {str(dtype).removeprefix('torch.')} weights, {repeat} interleaved repeats:",
            flush=True,
        )
        print("| batch | santa tok/s | HF tok/s | santa/HF min / median / max | greedy outputs |", flush=True)
        print("|---:|---:|---:|---:|---|", flush=True)
        for g in bench_generation(cfg, device, dtype, args.gen_batches, prompt, new, repeat):
            report["generate"].append(asdict(g))
            print(
                f"| {g.batch} | {g.santa_tokens_per_s:,.0f} | {g.hf_tokens_per_s:,.0f} | "
                f"{g.ratio_min:.2f} / {g.ratio_median:.2f} / {g.ratio_max:.2f}x | {'identical' if g.identical else 'differ'} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
