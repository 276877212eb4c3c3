"""What `python train.py` does, as a function of the composed config: data stages -> DataModule +
LightningModule + Trainer -> fit -> Hugging Face export -> samples. Kept out of train.py so every
line of it is testable."""

from __future__ import annotations

import json
import re
import shlex
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from santa import stages
from santa.callbacks import GracefulStop, StepsRichProgressBar, StepsTQDMProgressBar
from santa.checkpoint import checkpoint_mismatch, saved_model_config
from santa.confdict import plain_dict
from santa.data.datamodule import DataFiles, SantaDataModule
from santa.data.tokenizer import load_tokenizer, padded_vocab_size, special_ids
from santa.errors import RunInterrupted, RunRefused, SantaError
from santa.lit import SantaLM
from santa.model.config import GPTConfig
from santa.runs import JobRecord, run_as_santa, sweep_group
from santa.sweep.evaluation import EVAL_DIR, evaluate_run, planned_benchmarks, scores_for_logger

# Lightning 2.6 calls a torch API that torch 2.13 deprecated, once per fit: not the user's to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
# On a resume the run's checkpoint folder is not empty by design.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")

# Trainer keys that are santa's, not Lightning's.
_SANTA_TRAINER_KEYS = ("val_every_n_steps", "checkpoint_every_n_steps", "activation_checkpointing", "keep_checkpoints")


def world_size(trainer_cfg: dict[str, Any]) -> int:
    devices = trainer_cfg.get("devices", 1)
    if devices in ("auto", -1, "-1"):
        accel = trainer_cfg.get("accelerator", "cpu")
        devices = torch.cuda.device_count() if accel in ("gpu", "cuda") and torch.cuda.is_available() else 1
    if isinstance(devices, (list, tuple)):
        devices = len(devices)
    return int(devices) * int(trainer_cfg.get("num_nodes", 1))


def model_config(cfg: DictConfig, vocab_size: int) -> dict[str, Any]:
    model = plain_dict(cfg.model)
    if model.get("vocab_size") is None:
        model["vocab_size"] = vocab_size
    elif model["vocab_size"] < vocab_size:
        raise SantaError(
            f"model.vocab_size={model['vocab_size']} is smaller than the tokenizer's {vocab_size} "
            "tokens; set model.vocab_size=null to size it from the tokenizer"
        )
    if model["n_positions"] < cfg.data.seq_len:
        raise SantaError(f"model.n_positions={model['n_positions']} < data.seq_len={cfg.data.seq_len}")
    return model


def build_datamodule(cfg: DictConfig, files: DataFiles) -> SantaDataModule:
    return SantaDataModule(
        files,
        objective=cfg.objective.name,
        objective_params=plain_dict(cfg.objective.params),
        seq_len=cfg.data.seq_len,
        micro_batch_size=cfg.data.micro_batch_size,
        global_batch_size=cfg.data.global_batch_size,
        val_windows=cfg.data.val_windows,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
    )


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there bf16 autocast is
    ~1.4x an fp32 step (the demo model and 6 x 512 alike); elsewhere it is emulated and slower."""
    cpu = torch.cpu
    return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())


def resolve_precision(precision: Any, accelerator: Any) -> Any:
    """``trainer.precision=auto``: bf16-mixed on a CPU with native bf16 (else 32-true), and on a GPU
    that supports bf16 (else 16-mixed). Any other value is Lightning's own, returned unchanged."""
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_bf16() else "32-true"


def build_trainer(
    cfg: DictConfig,
    accumulate: int,
    run_dir: Path,
    extra_callbacks: list[pl.Callback] | None = None,
    overrides: dict[str, Any] | None = None,
    resuming: bool = False,
) -> pl.Trainer:
    """The Lightning Trainer of a config; ``overrides`` are Trainer kwargs for programmatic use
    (e.g. a precision plugin object, which a YAML file cannot hold); ``resuming``: the fit will
    restore a checkpoint of this run."""
    kwargs = {k: v for k, v in cfg.trainer.items() if k not in _SANTA_TRAINER_KEYS and k != "strategy"}
    kwargs = plain_dict(OmegaConf.create(kwargs))
    kwargs["precision"] = resolve_precision(kwargs.get("precision"), kwargs.get("accelerator", "auto"))
    kwargs.update(overrides or {})
    strategy = cfg.trainer.strategy
    if isinstance(strategy, DictConfig):
        strategy = instantiate(strategy, _convert_="all")
    every = int(cfg.trainer.checkpoint_every_n_steps)
    keep = cfg.trainer.get("keep_checkpoints")
    callbacks: list[pl.Callback] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="step_{step:06d}",  # no "=": the path must survive a Hydra override
            auto_insert_metric_name=False,
            every_n_train_steps=every,
            # Keep the newest N: ranked by step (Lightning always offers "step" to monitor).
            **({"monitor": "step", "mode": "max", "save_top_k": int(keep)} if keep is not None else {"save_top_k": -1}),
            save_last=True,
        ),
        *(extra_callbacks or []),
    ]
    if cfg.trainer.enable_progress_bar:
        # Rich redraws in place on a terminal; in a log file it would show nothing until the
        # end, so there a tqdm bar prints a line every ~2 % of the run instead.
        if sys.stderr.isatty():
            callbacks.append(StepsRichProgressBar(leave=True))
        else:
            callbacks.append(StepsTQDMProgressBar(refresh_rate=max(1, int(cfg.trainer.max_steps) * accumulate // 50)))
    logger = build_logger(cfg, resuming)
    val_every = int(cfg.trainer.val_every_n_steps)
    # santa prints the model's size itself; Lightning's table adds a FLOPs column that reads 0
    # without an example input.
    kwargs.setdefault("enable_model_summary", False)
    return pl.Trainer(
        **kwargs,
        strategy=strategy,
        accumulate_grad_batches=accumulate,
        # The training stream is endless (see StepBatchSampler): validate every N optimizer steps.
        val_check_interval=val_every * accumulate,
        check_val_every_n_epoch=None,
        callbacks=callbacks,
        logger=logger,
        use_distributed_sampler=False,  # the sampler shards by rank itself
        default_root_dir=str(run_dir),
    )


def build_logger(cfg: DictConfig, resuming: bool = False) -> Any:
    """The configured logger; a W&B run is named after the experiment and grouped by Hydra sweep, so
    the jobs of one multirun are separate runs side by side (each finished by finish_loggers)."""
    if not cfg.get("logger"):
        return False
    extra: dict[str, Any] = {}
    if str(cfg.logger.get("_target_", "")).endswith("WandbLogger"):
        if cfg.logger.get("group") is None:
            extra["group"] = sweep_group()
        if cfg.logger.get("name") is None and cfg.get("experiment_name"):
            extra["name"] = str(cfg.experiment_name)
        # A resumed run stays one W&B run: the id of the run dir's last W&B run (WandbLogger passes
        # resume="allow"; offline, `wandb sync` uploads the files of one id in order, as one run).
        if resuming and not (cfg.logger.get("id") or cfg.logger.get("version")) and cfg.logger.get("save_dir"):
            previous = last_wandb_run_id(Path(str(cfg.logger.save_dir)) / "wandb")
            if previous:
                extra["id"] = previous
    return instantiate(cfg.logger, **extra)


_WANDB_RUN_DIR = re.compile(r"(?:offline-)?run-(\d{8}_\d{6})-([A-Za-z0-9]+)")


def last_wandb_run_id(wandb_dir: Path) -> str | None:
    """The id of the newest W&B run (online or offline) that wrote into ``wandb_dir``, if any."""
    runs = [m.groups() for p in wandb_dir.glob("*run-*") if p.is_dir() and (m := _WANDB_RUN_DIR.fullmatch(p.name))]
    return max(runs)[1] if runs else None


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    try:
        return plain_dict(cfg)
    except Exception:  # an interpolation only Hydra's app can resolve (tests compose without it)
        return plain_dict(cfg, resolve=False)


def _resolve_ckpt(ckpt: str | None, run_dir: Path) -> str | None:
    if ckpt in (None, "", "null"):
        return None
    last = run_dir / "checkpoints" / "last.ckpt"
    if ckpt == "auto":  # resume where this run dir stopped, if it has begun (a whole sweep: -m ... ckpt_path=auto)
        return str(last) if last.exists() else None
    if ckpt == "last":
        path = last
    else:
        path = Path(ckpt)
    if not path.exists():
        raise RunRefused(f"ckpt_path={ckpt}: no checkpoint at {path}; nothing was changed")
    return str(path)


def check_resume(ckpt_path: str, cfg: DictConfig) -> None:
    """Refuse a resume before anything of the run is touched: a file that is not a santa training
    checkpoint, or one of another model configuration (the model's own check in
    :meth:`SantaLM.on_load_checkpoint` would come after the logger and job.json were written)."""
    path = Path(ckpt_path)
    if path.is_dir():  # a DeepSpeed checkpoint (a folder of shards): checked as it loads
        return
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:  # noqa: BLE001  (torch raises many kinds for a file that is no checkpoint)
        raise RunRefused(
            f"ckpt_path={ckpt_path}: not a checkpoint torch can read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); nothing was changed"
        ) from None
    saved = saved_model_config(ckpt) if isinstance(ckpt, dict) else None
    if saved is None or "state_dict" not in ckpt:
        raise RunRefused(
            f"ckpt_path={ckpt_path}: not a santa training checkpoint (it has no model configuration "
            "or state_dict); resume from <run dir>/checkpoints/*.ckpt; nothing was changed"
        )
    ours = GPTConfig.from_dict(model_config(cfg, int(saved.get("vocab_size") or 0))).to_dict()
    mismatch = checkpoint_mismatch(ckpt, ours)
    if mismatch is not None:
        raise RunRefused(f"{mismatch} Nothing was changed.")


def resume_command(run_dir: Path) -> str:
    """The command that resumes this run in place from its last checkpoint."""
    prog = "santa train" if run_as_santa("train") else "python train.py"
    overrides: list[str] = []
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            overrides = [
                o
                for o in HydraConfig.get().overrides.task
                if o.split("=", 1)[0].lstrip("+~") not in ("ckpt_path", "hydra.run.dir", "run_dir")
            ]
    except ImportError:
        pass
    return " ".join([prog, *map(shlex.quote, overrides), "ckpt_path=last", shlex.quote(f"hydra.run.dir={run_dir}")])


def train(
    cfg: DictConfig, extra_callbacks: list[pl.Callback] | None = None, trainer_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Prepare data, fit, export; then, when ``evaluation.runs`` is configured, evaluate the model.
    Rank zero keeps ``<run_dir>/job.json`` current (state, pipeline report, results) for the report."""
    run_dir = Path(cfg.run_dir)
    # A resume is checked before the run directory is touched: a refused one changes nothing.
    ckpt_path = _resolve_ckpt(cfg.ckpt_path, run_dir)
    if ckpt_path is not None:
        check_resume(ckpt_path, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    job = None
    # Lightning sets rank_zero_only.rank at start-up; its stubs type only the decorator.
    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]
        job = JobRecord(
            run_dir,
            experiment=cfg.get("experiment_name"),
            scale=(cfg.get("scale") or {}).get("name"),
            benchmarks=planned_benchmarks(cfg),
            max_steps=int(cfg.trainer.max_steps),
            state="preparing",
        )
    try:
        summary = _train(cfg, run_dir, job, extra_callbacks, trainer_overrides, ckpt_path)
    except RunInterrupted:
        raise  # job.json already says interrupted (by training or its evaluation), with how to resume
    except KeyboardInterrupt:
        if job is not None:
            job.update(state="interrupted", signal="SIGINT", error="interrupted before training began")
        raise
    except BaseException as exc:
        if job is not None:
            job.update(state="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
        raise
    if job is not None:
        job.update(state="finished")
    return summary


def _train(
    cfg: DictConfig,
    run_dir: Path,
    job: JobRecord | None,
    extra_callbacks: list[pl.Callback] | None,
    trainer_overrides: dict[str, Any] | None,
    ckpt_path: str | None = None,
) -> dict[str, Any]:
    console = Console(stderr=True, soft_wrap=True)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    t0 = time.perf_counter()
    files = stages.prepare(cfg, console)
    if job is not None:
        report = Path(files.pipeline_dir) / "report.json" if files.pipeline_dir else None
        job.update(
            state="training",
            pipeline={"name": (cfg.get("pipeline") or {}).get("name"), "report": str(report) if report else None},
        )
    tokenizer = load_tokenizer(files.tokenizer_dir)
    mcfg = model_config(cfg, padded_vocab_size(len(tokenizer)))
    dm = build_datamodule(cfg, files)
    world = world_size(cfg.trainer)
    accumulate = dm.accumulation(world)
    tokens_per_step = cfg.data.global_batch_size * cfg.data.seq_len
    lit = SantaLM(
        mcfg,
        plain_dict(cfg.optim),
        max_steps=int(cfg.trainer.max_steps),
        tokens_per_step=tokens_per_step,
        activation_checkpointing=bool(cfg.trainer.get("activation_checkpointing", False)),
        tokenizer_json=tokenizer.backend_tokenizer.to_str(),
    )
    stop = GracefulStop(run_dir / "checkpoints")
    trainer = build_trainer(
        cfg, accumulate, run_dir, [stop, *(extra_callbacks or [])], trainer_overrides, resuming=ckpt_path is not None
    )
    if trainer.is_global_zero:
        console.print(
            f"[bold]model[/bold] {lit.model.num_parameters():,} parameters, attention={mcfg['attention']}, "
            f"objective={cfg.objective.name}; {world} process(es) x micro-batch {cfg.data.micro_batch_size} "
            f"x accumulation {accumulate} = {cfg.data.global_batch_size} sequences of {cfg.data.seq_len} tokens per step, "
            f"precision {trainer.precision}"
        )
    for lg in trainer.loggers:
        lg.log_hyperparams({"config": resolved_config(cfg)})
    try:
        trainer.fit(lit, datamodule=dm, ckpt_path=ckpt_path)
        if stop.interrupted:
            _interrupted(stop, trainer, run_dir, job)
        summary: dict[str, Any] = {
            "run_dir": str(run_dir),
            "experiment": cfg.get("experiment_name"),
            "checkpoints": str(run_dir / "checkpoints"),
            "tokenizer": files.tokenizer_dir,
            "token_shards": {"train": files.train, "val": files.val},
            "pipeline": files.pipeline_dir,
            "global_step": trainer.global_step,
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            "seconds": round(time.perf_counter() - t0, 1),
        }
        if not trainer.is_global_zero:
            return summary
        if cfg.export_hf:
            summary["hf"] = export(lit, tokenizer, run_dir / "hf", console)
        if cfg.show_samples:
            summary["samples"] = show_samples(lit, tokenizer, cfg.sample, console)
        write_summary(run_dir, summary)
        if job is not None:
            job.update(global_step=trainer.global_step, train=summary["metrics"])
        if planned_benchmarks(cfg):
            summary["evaluation"] = evaluate_trained(cfg, run_dir, trainer, job)
            summary["seconds"] = round(time.perf_counter() - t0, 1)
            write_summary(run_dir, summary)
        print_artifacts(summary, console)
        return summary
    finally:
        finish_loggers(trainer)


def _interrupted(stop: GracefulStop, trainer: pl.Trainer, run_dir: Path, job: JobRecord | None) -> None:
    command = resume_command(run_dir)
    if job is not None:
        job.update(
            state="interrupted",
            signal=stop.signal_name,
            global_step=trainer.global_step,
            checkpoint=str(stop.checkpoint),
            resume=command,
            error=None,
        )
    assert stop.signum is not None
    raise RunInterrupted(
        f"{stop.signal_name}: training stopped at step {trainer.global_step} of {trainer.max_steps}; "
        f"checkpoint saved to {stop.checkpoint}. Resume with: {command}",
        stop.signum,
    )


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


def evaluate_trained(cfg: DictConfig, run_dir: Path, trainer: pl.Trainer, job: JobRecord | None) -> dict[str, Any]:
    """Evaluate the run's final model (evaluate.py per configured run); each benchmark's scores go
    to this run's loggers as eval/<benchmark>/<metric> and into job.json as they appear."""
    if job is not None:
        job.update(state="evaluating")
    scores: dict[str, Any] = {}

    def done(benchmark: str, results: dict[str, Any]) -> None:
        scores[benchmark] = results.get("scores") or {}
        metrics = scores_for_logger(benchmark, results)
        for lg in trainer.loggers:
            if metrics:
                lg.log_metrics(metrics, step=trainer.global_step)
            lg.save()
        if job is not None:
            job.update(evaluation={**job.data["evaluation"], benchmark: f"{EVAL_DIR}/{benchmark}/results.json"})

    try:
        evaluate_run(cfg, run_dir, on_done=done)
    except RunInterrupted as exc:
        # Stopped during the evaluation after training: the model is saved, the evaluation's
        # caches kept; job.json says so, with the command (in the message) that resumes it.
        if job is not None:
            job.update(state="interrupted", signal=signal.Signals(exc.signum).name, error=str(exc))
        raise
    return scores


def finish_loggers(trainer: pl.Trainer) -> None:
    """Close W&B runs: in one process (a Hydra multirun, a notebook), an unfinished run would
    swallow the next job's metrics."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()


def export(lit: SantaLM, tokenizer: Any, out: Path, console: Console) -> str | None:
    from santa.model.hf import UnsupportedConversionError, export_hf

    try:
        export_hf(lit.model, out, tokenizer=tokenizer)
    except UnsupportedConversionError as exc:
        console.print(f"[yellow]no Hugging Face export:[/yellow] {escape(str(exc))}")
        return None
    return str(out)


def show_samples(lit: SantaLM, tokenizer: Any, sample: DictConfig, console: Console) -> dict[str, str]:
    from santa.data.fim_format import infill_prompt
    from santa.model.generation import generate

    model = lit.model.eval()
    eot = special_ids(tokenizer).eot

    def run(ids: list[int]) -> str:
        budget = min(int(sample.max_new_tokens), model.config.n_positions - len(ids))
        out = generate(model, torch.tensor([ids]), budget, eos_token_id=eot)[0, len(ids) :].tolist()
        return tokenizer.decode(out[: out.index(eot)] if eot in out else out)

    completion = run(tokenizer.encode(sample.prompt, add_special_tokens=False))
    middle = run(list(infill_prompt(tokenizer, sample.prefix, sample.suffix)))
    console.rule("completion (greedy)")
    console.out(sample.prompt, highlight=False, end="")
    console.out(completion, style="green", highlight=False)
    console.rule("fill-in-the-middle (greedy, PSM)")
    console.out(sample.prefix, highlight=False, end="")
    console.out(middle, style="bold green", highlight=False, end="")
    console.out(sample.suffix, highlight=False)
    return {"completion": completion, "infill": middle}


def print_artifacts(summary: dict[str, Any], console: Console) -> None:
    table = Table(title="artifacts", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("where", overflow="fold")
    table.add_row("run directory", summary["run_dir"])
    table.add_row("checkpoints", summary["checkpoints"])
    if summary.get("hf"):
        table.add_row("Hugging Face export", summary["hf"])
    table.add_row("tokenizer", summary["tokenizer"])
    table.add_row("token shards", ", ".join(summary["token_shards"]["train"] + summary["token_shards"]["val"]))
    table.add_row("summary", str(Path(summary["run_dir"]) / "summary.json"))
    m = summary["metrics"]
    for key in ("train/loss", "val/loss", "train/tokens_per_s"):
        if key in m:
            table.add_row(key, f"{m[key]:.4g}")
    console.print(table)
