"""benchmarks/gpu_check.sh / gpu_check.py, the parts that run without a GPU: a tiny model on CPU
through the same code paths (autocast bf16 and fp16 + GradScaler, the flash-only SDPA context,
activation checkpointing, fused AdamW, the HF twin and both generate loops)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_tiny_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [
            "bash",
            str(ROOT / "benchmarks" / "gpu_check.sh"),
            "--tiny",
            "--device",
            "cpu",
            "--compile",
            "off",
            "--peak-tflops",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    report = json.loads(out.read_text())
    train = report["train"]
    assert [(r["precision"], r["compiled"]) for r in train] == [("bf16", False), ("fp16", False)]
    for r in train:
        assert r["tokens_per_s"] > 0 and r["peak_mib"] > 0 and 0 < r["mfu"] < 1
        assert r["flash"] == "flash"  # dropout 0 in the tiny model: the flash-only context held
        assert 5.0 < r["final_loss"] < 7.0  # ~ln(512) at random init, finite under fp16 scaling
    gen = report["generate"]
    assert [g["batch"] for g in gen] == [16, 64]
    for g in gen:
        assert g["santa_tokens_per_s"] > 0 and g["hf_tokens_per_s"] > 0
        assert g["identical"], g  # fp32 on CPU: santa and HF produce the same greedy tokens
    assert "| bf16-mixed | no |" in res.stdout and "generation, greedy" in res.stdout


def test_flops_per_token_of_santacoder() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch
    from gpu_check import flops_per_token

    from santa.model import GPT, santacoder_1b

    with torch.device("meta"):
        model = GPT(santacoder_1b())
    # 6 x (24 x 46.2 M block parameters + 49280 x 2048 vocab projection) + 12 x 24 x 2048 x 2048.
    n = model.num_parameters(exclude_embeddings=True) + 49280 * 2048
    assert flops_per_token(model, 2048) == 6 * n + 12 * 24 * 2048 * 2048
    assert 7.9e9 < flops_per_token(model, 2048) < 8.1e9
