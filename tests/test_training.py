"""Training core: config composition, a real tiny fit, determinism, the LR schedule, fp16 skipped
steps, checkpoints from another config, W&B offline logging, DeepSpeed's configuration."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import compose_train, losses_by_step, read_metrics

from santa.lit import SantaLM, warmup_cosine
from santa.training import build_datamodule, train, world_size


def test_default_config_composes_the_demo() -> None:
    cfg = compose_train()
    assert cfg.model.attention == "mqa"
    assert cfg.objective.name == "fim"
    assert cfg.objective.params.fim_rate == 0.5 and cfg.objective.params.fim_spm_rate == 0.5
    assert cfg.trainer.accelerator == "cpu" and cfg.logger._target_.endswith("CSVLogger")
    assert cfg.data.input is None  # the embedded demo corpus


def test_standard_overrides() -> None:
    cfg = compose_train(["model.attention=mha", "objective=ar", "trainer.max_steps=50"])
    assert (cfg.model.attention, cfg.objective.name, cfg.trainer.max_steps) == ("mha", "ar", 50)


def test_santacoder_1b_config_is_the_papers() -> None:
    cfg = compose_train(["model=santacoder_1b", "tokenizer=santacoder"])
    m = cfg.model
    assert (m.n_layer, m.n_embd, m.n_head, m.n_inner, m.n_positions, m.vocab_size) == (24, 2048, 16, 8192, 2048, 49280)
    assert cfg.tokenizer.vocab_size == 49152 and cfg.optim.lr == 2e-4 and cfg.data.seq_len == 2048


def test_deepspeed_96gpu_composes_and_builds_the_strategy() -> None:
    from hydra.utils import instantiate
    from lightning.pytorch.strategies import DeepSpeedStrategy

    cfg = compose_train(["trainer=deepspeed_96gpu", "model=santacoder_1b"])
    t = cfg.trainer
    assert (t.num_nodes, t.devices, t.precision) == (12, 8, "16-mixed")
    assert world_size(t) == 96
    assert cfg.data.micro_batch_size == 2 and cfg.data.global_batch_size == 192
    dm = build_datamodule(cfg, files=None)  # type: ignore[arg-type]
    assert dm.accumulation(world_size(t)) == 1  # 96 x 2 = 192: pure data parallel
    strategy = instantiate(t.strategy, _convert_="all")
    assert isinstance(strategy, DeepSpeedStrategy)
    ds = strategy.config
    assert ds["fp16"] == {
        "enabled": True,
        "loss_scale": 0,
        "initial_scale_power": 16,
        "loss_scale_window": 1000,
        "hysteresis": 2,
        "min_loss_scale": 1,
    }
    assert 2 ** ds["fp16"]["initial_scale_power"] == 65536
    assert ds["train_micro_batch_size_per_gpu"] == 2 and ds["gradient_accumulation_steps"] == 1
    assert ds["gradient_clipping"] == 1.0 and t.gradient_clip_val is None  # clipped once, by DeepSpeed
    assert t.activation_checkpointing is True


def test_warmup_cosine_schedule() -> None:
    f = lambda s: warmup_cosine(s, total_steps=1000, warmup_steps=20, min_ratio=0.0)  # noqa: E731
    assert f(0) == pytest.approx(1 / 20) and f(19) == pytest.approx(1.0)
    assert f(20) == pytest.approx(1.0)
    assert f(510) == pytest.approx(0.5)
    assert f(1000) == pytest.approx(0.0, abs=1e-12)
    assert all(f(s) >= f(s + 1) for s in range(20, 999))


def test_optimizer_groups_follow_the_recipe(tiny_cfg) -> None:
    cfg = tiny_cfg()
    lit = SantaLM(
        {**dict(cfg.model), "vocab_size": 512, "n_positions": 64}, dict(cfg.optim), max_steps=100, tokens_per_step=256
    )
    opt = lit.configure_optimizers()["optimizer"]
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["eps"] == 1e-8
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in lit.model.named_parameters():
        is_matrix = p.dim() == 2 and "wte" not in name and "wpe" not in name
        assert (id(p) in decayed) == is_matrix, name
    assert {g["weight_decay"] for g in opt.param_groups} == {0.0, 0.1}


@pytest.mark.slow
def test_tiny_fit_end_to_end(tiny_cfg, tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = train(tiny_cfg("trainer.max_steps=12", "export_hf=true", "show_samples=true", run_dir=run))
    assert summary["global_step"] == 12
    rows = read_metrics(run)
    keys = set(rows[0])
    for key in ("train/loss", "train/ppl", "train/lr", "train/tokens_per_s", "train/grad_norm", "val/loss"):
        assert key in keys, key
    losses = losses_by_step(run)
    assert len(losses) == 12
    first, last = sum(list(losses.values())[:3]) / 3, sum(list(losses.values())[-3:]) / 3
    assert last < first - 0.1, losses  # it learns
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(val) == 4 and val[-1] < val[0]
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    # trainer.keep_checkpoints=2 (the CPU default): the newest two of steps 3, 6, 9, 12, and last.
    assert ckpts == ["last.ckpt", "step_000009.ckpt", "step_000012.ckpt"]
    assert (run / "hf" / "config.json").is_file() and (run / "summary.json").is_file()
    assert set(summary["samples"]) == {"completion", "infill"}
    # The export is a plain GPTBigCode model for transformers, and it is the model we trained.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from santa.artifacts import load_model

    hf = AutoModelForCausalLM.from_pretrained(run / "hf").eval()
    tok = AutoTokenizer.from_pretrained(run / "hf")
    ours = load_model(run / "checkpoints" / "last.ckpt")
    ids = torch.tensor([tok.encode("def f(x):\n    return x")])
    with torch.no_grad():
        diff = (hf(ids).logits - ours.model(ids)[0]).abs().max().item()
    assert diff < 1e-4
    # The CLI completes and infills with the export and with the checkpoint alike.
    import subprocess
    import sys

    santa_cli = [sys.executable, "-m", "santa.cli"]
    gen = subprocess.run(
        [*santa_cli, "generate", "--model", str(run / "hf"), "--prompt", "def f(x):", "--max-new-tokens", "8", "--raw"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gen.returncode == 0, gen.stderr
    inf = subprocess.run(
        [
            *santa_cli,
            "infill",
            "--model",
            str(run / "checkpoints" / "last.ckpt"),
            "--prefix",
            "def f(x):\n    ",
            "--suffix",
            "\n    return y\n",
            "--max-new-tokens",
            "8",
            "--raw",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inf.returncode == 0, inf.stderr
    too_long = subprocess.run(
        [*santa_cli, "generate", "--model", str(run), "--prompt", "x " * 200, "--max-new-tokens", "8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert too_long.returncode == 2 and "exceeds the model's context of 64 tokens" in too_long.stderr + too_long.stdout


@pytest.mark.slow
def test_same_seed_same_losses(tiny_cfg, tmp_path: Path) -> None:
    train(tiny_cfg("trainer.max_steps=4", run_dir=tmp_path / "a"))
    train(tiny_cfg("trainer.max_steps=4", run_dir=tmp_path / "b"))
    train(tiny_cfg("trainer.max_steps=4", "seed=7", run_dir=tmp_path / "c"))
    a, b, c = (losses_by_step(tmp_path / x) for x in "abc")
    assert a == b
    assert a != c


@pytest.mark.slow
def test_checkpoint_from_another_model_config_is_refused(tiny_cfg, tmp_path: Path) -> None:
    from santa.errors import RunRefused

    train(tiny_cfg("trainer.max_steps=3", run_dir=tmp_path / "a"))
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    # Refused before anything of the run is written (the model's own check would come later).
    with pytest.raises(RunRefused, match=r"n_embd: checkpoint=64 vs config=96.*same model overrides"):
        train(tiny_cfg("trainer.max_steps=5", "model.n_embd=96", f"ckpt_path={ckpt}", run_dir=tmp_path / "b"))


@pytest.mark.slow
def test_fp16_overflow_skips_do_not_advance_the_schedule(tiny_cfg, tmp_path: Path) -> None:
    """A real GradScaler on CPU starting at a scale that overflows fp16: the skipped steps leave
    the learning-rate schedule where it was (Megatron's behaviour; Lightning alone would step)."""
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.plugins.precision import MixedPrecision

    seen: list[tuple[int, float, bool]] = []

    class Watch(Callback):
        def on_train_batch_end(self, trainer, pl_module, *args) -> None:
            sched = trainer.lr_scheduler_configs[0].scheduler
            seen.append(
                (
                    sched.last_epoch,
                    float(trainer.optimizers[0].param_groups[0]["lr"]),
                    pl_module.optimizer_step_was_skipped(),
                )
            )

    cfg = tiny_cfg("trainer.max_steps=16", run_dir=tmp_path / "r")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**27)
    plugin = MixedPrecision("16-mixed", "cpu", scaler=scaler)
    train(cfg, extra_callbacks=[Watch()], trainer_overrides={"precision": None, "plugins": [plugin]})
    skipped = [s for s in seen if s[2]]
    applied = [s for s in seen if not s[2]]
    assert skipped and applied, seen
    # The scheduler counted only applied steps.
    assert seen[-1][0] == len(applied)
    assert math.isclose(seen[0][1], 1e-3)


@pytest.mark.slow
def test_wandb_logs_offline_without_an_account(tiny_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wandb_records import read_run, run_files

    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    run = tmp_path / "run"
    train(tiny_cfg("logger=wandb", "trainer.max_steps=4", run_dir=run))
    files = run_files(run / "wandb")
    assert len(files) == 1 and "offline-run-" in str(files[0])

    def finished(path: Path) -> dict:
        # wandb-core writes the file from its own process: until it has flushed the exit record the
        # file may end mid-record ("Wire format was corrupt"), so read it again until it is whole.
        import time

        deadline = time.monotonic() + 90
        while True:
            try:
                rec = read_run(path)
                if rec["finished"]:
                    return rec
            except Exception:  # noqa: BLE001  (a partly written record)
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise AssertionError(f"the W&B run in {path} was never finished (no exit record)")
            time.sleep(0.5)

    rec = finished(files[0])
    losses = [row["train/loss"] for row in rec["history"] if "train/loss" in row]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert any("val/loss" in row for row in rec["history"])
    assert rec["config"]["model_config"]["attention"] == "mqa"
    assert rec["summary"]["trainer/global_step"] >= 3
    # Resumed from its checkpoint, the run stays one W&B run: a second file under the same id
    # (`wandb sync` uploads them in order, as one run), not a second run beside the first.
    train(tiny_cfg("logger=wandb", "trainer.max_steps=4", "ckpt_path=last", run_dir=run))
    files = run_files(run / "wandb")
    assert len(files) == 2, files
    assert {finished(f)["id"] for f in files} == {rec["id"]}


def test_precision_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from santa.training import cpu_has_bf16, resolve_precision

    assert resolve_precision("16-mixed", "cpu") == "16-mixed"  # anything else is Lightning's
    assert resolve_precision("auto", "cpu") == ("bf16-mixed" if cpu_has_bf16() else "32-true")
    # The CPU answer depends on the instruction set torch reports: both branches.
    for bf16, want in ((True, "bf16-mixed"), (False, "32-true")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda bf16=bf16: bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert resolve_precision("auto", "cpu") == want
    cfg = compose_train([])
    assert cfg.trainer.precision == "auto"


@pytest.mark.slow
def test_bf16_mixed_trains_on_cpu_close_to_fp32(tiny_cfg, tmp_path: Path) -> None:
    """trainer.precision=bf16-mixed (Lightning's CPU autocast) trains, and its loss curve stays
    within 0.02 nats of fp32's at every one of the first 10 steps (same seed, same batches;
    measured: 3e-4)."""
    steps = "trainer.max_steps=10"
    train(tiny_cfg(steps, "trainer.precision=32-true", run_dir=tmp_path / "fp32"))
    train(tiny_cfg(steps, "trainer.precision=bf16-mixed", run_dir=tmp_path / "bf16"))
    fp32, bf16 = losses_by_step(tmp_path / "fp32"), losses_by_step(tmp_path / "bf16")
    assert len(fp32) == len(bf16) == 10
    diffs = [abs(fp32[s] - bf16[s]) for s in fp32]
    assert max(diffs) < 0.02, (fp32, bf16)
    assert fp32 != bf16  # bf16 really ran: it rounds differently
    assert bf16[max(bf16)] < bf16[min(bf16)] - 0.1  # and it learns
