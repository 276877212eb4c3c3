"""What `python evaluate.py` does, as functions of the composed config: the orchestration of one
evaluation. The benchmark (santa.eval.tasks) owns its prompts, postprocessing, programs and
scores; this module builds it, reads the settings (santa.eval.settings), loads the model
(santa.eval.models), samples (santa.eval.sampling), executes and records (santa.eval.scoring),
writes ``results.json`` + ``results.md`` (santa.eval.tables) and logs. Kept out of evaluate.py
so every line of it is testable.

Resuming: generations are cached per work unit in ``<run_dir>/generations.jsonl`` and execution
results in the sandbox's cache (``<run_dir>/executions.jsonl``), so rerunning the same command with
the same ``output=`` continues where an interrupted run stopped. SIGTERM and SIGINT stop a run
cleanly (see :func:`evaluate`): every process of its sandboxes is gone, both caches end on a whole
line, and the one-line message names what they keep and the command that resumes.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from santa import registry
from santa.errors import RunInterrupted
from santa.eval import keyed_jsonl
from santa.eval.models import load_generator
from santa.eval.sampling import generate_completions
from santa.eval.scoring import check_ks, check_samples, read_samples, score, toolchain_problem
from santa.eval.settings import EvaluationError, ExecutionSettings, GenerationSettings
from santa.eval.tasks.base import Benchmark
from santa.runs import run_as_santa, sweep_group
from santa.signals import signal_of, stop_on_signals

SCHEMA = "santa.eval.results/1"
GENERATIONS_FILE = "generations.jsonl"
EXECUTIONS_FILE = "executions.jsonl"
SAMPLES_FILE = "samples.jsonl"


# ------------------------------------------------------------------------------ the run
def build_benchmark(name: str, params: dict[str, Any] | None = None, data_dir: str | Path | None = None) -> Benchmark:
    try:
        benchmark: Benchmark = registry.build("santa.benchmarks", name, params, data_dir=data_dir)
    except (registry.UnknownPluginError, registry.PluginParamsError) as exc:
        raise EvaluationError(str(exc)) from exc
    except TypeError as exc:
        raise EvaluationError(f"benchmark {name}: bad parameters {params}: {exc}") from exc
    return benchmark


def fit_to_context(settings: GenerationSettings, context: int, console: Console) -> GenerationSettings:
    """A budget of new tokens that leaves no room for a prompt (the presets' 512 against a small
    demo model's 256-token context) is capped at half the context, with a note: the paper's
    presets stay usable on any model, and results.json records the budget actually used."""
    if settings.max_new_tokens < context:
        return settings
    capped = max(1, context // 2)
    console.print(
        f"[yellow]note:[/yellow] generation.max_new_tokens={settings.max_new_tokens} does not fit the model's "
        f"{context}-token context with a prompt; using {capped} (half the context). Set generation.max_new_tokens "
        "to choose another budget."
    )
    return replace(settings, max_new_tokens=capped)


def _run_dir(cfg: DictConfig) -> Path:
    run_dir = cfg.get("run_dir") or cfg.get("output")
    if not run_dir:
        raise EvaluationError("no output directory: set output=<dir>")
    return Path(run_dir)


def _settings_key(
    benchmark: Benchmark, dataset: dict[str, Any], model_info: dict[str, Any], settings: GenerationSettings
) -> str:
    ident = {
        "benchmark": benchmark.name,
        "dataset": dataset,
        "model": {k: model_info.get(k) for k in ("source", "backend", "dtype", "fingerprint")},
        "settings": settings.cache_fields(),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def evaluate(cfg: DictConfig, console: Console | None = None) -> dict[str, Any]:
    """``python evaluate.py``: generate (or read ``samples=``), score, write results, log.

    SIGTERM and SIGINT stop it wherever it is: the sandboxes are stopped with every process of
    theirs, the caches keep every finished sample and result, and :class:`RunInterrupted` says
    what was kept and the command that resumes (its exit status is 128 + the signal)."""
    console = console or Console(stderr=True, soft_wrap=True)
    run_dir = _run_dir(cfg)
    stage = ["starting"]
    kept_before = _kept(run_dir)
    with stop_on_signals(repeat="ignore"):
        try:
            return _evaluate(cfg, console, run_dir, stage)
        except KeyboardInterrupt as exc:
            raise _interrupted(run_dir, signal_of(exc), stage[0], kept_before) from None


def _kept(run_dir: Path) -> tuple[int, int]:
    """Samples in the generation cache and program results in the execution cache."""
    gens = keyed_jsonl.read(run_dir / GENERATIONS_FILE)
    return sum(len(r.get("raw") or ()) for r in gens.values()), len(keyed_jsonl.read(run_dir / EXECUTIONS_FILE))


def _interrupted(run_dir: Path, signum: int, stage: str, before: tuple[int, int]) -> RunInterrupted:
    (samples, results), (samples0, results0) = _kept(run_dir), before
    kept = []
    if samples:
        kept.append(f"{samples} generated samples in {run_dir / GENERATIONS_FILE} ({samples - samples0} from this run)")
    if results:
        kept.append(f"{results} program results in {run_dir / EXECUTIONS_FILE} ({results - results0} from this run)")
    return RunInterrupted(
        f"{signal.Signals(signum).name}: evaluation stopped while {stage}; "
        + (f"kept {' and '.join(kept)}" if kept else "nothing was finished yet")
        + f". Resume with: {resume_command(run_dir)}",
        signum,
    )


def resume_command(run_dir: Path) -> str:
    """The command that continues this evaluation from its caches: the same command line, with
    ``output=`` pinned where the directory was a timestamped default (a plain rerun would start
    a new one)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover - hydra is a dependency
        return f"rerun with output={shlex.quote(str(run_dir))}"
    if not HydraConfig.initialized():
        return f"rerun with output={shlex.quote(str(run_dir))}"
    hc = HydraConfig.get()
    argv0 = sys.argv[0] if sys.argv else "evaluate.py"
    prog = "santa evaluate" if run_as_santa("evaluate") else f"python {shlex.quote(argv0)}"
    args = list(sys.argv[1:])
    pinned = ("output", "hydra.run.dir", "hydra.sweep.dir")
    if not any(a.split("=", 1)[0].lstrip("+~") in pinned for a in args):
        where = str(Path(hc.sweep.dir).resolve()) if hc.mode == RunMode.MULTIRUN else str(run_dir.resolve())
        args.append(f"output={where}")
    return " ".join([prog, *map(shlex.quote, args)])


def _evaluate(cfg: DictConfig, console: Console, run_dir: Path, stage: list[str]) -> dict[str, Any]:
    from santa.eval import tables as report

    run_dir.mkdir(parents=True, exist_ok=True)
    bcfg = cfg.benchmark
    params = bcfg.get("params")
    params = OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else dict(params or {})
    benchmark = build_benchmark(bcfg.name, params, cfg.get("data_dir"))  # type: ignore[arg-type]
    problems = benchmark.problems()
    limit = cfg.get("limit")
    if limit is not None:
        if int(limit) < 1:
            raise EvaluationError(f"limit must be >= 1, got {limit}")
        problems = problems[: int(limit)]
    dataset = benchmark.dataset()
    settings = GenerationSettings.from_config(cfg.generation, seed=cfg.get("seed"))
    ex = cfg.get("execution") or {}
    execution = ExecutionSettings(
        workers=ex.get("workers"), timeout=ex.get("timeout"), cache=bool(ex.get("cache", True))
    )
    samples_path = cfg.get("samples")
    if samples_path and cfg.get("model") and cfg.model.get("path"):
        raise EvaluationError("give either model.path (generate and score) or samples=<file> (score only), not both")
    samples_continue = str(cfg.get("samples_continue") or "prompt")
    if samples_continue not in ("prompt", "dataset_prompt"):
        raise EvaluationError(f"samples_continue must be prompt or dataset_prompt, got {samples_continue!r}")
    progress = bool(cfg.get("progress", True))
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "benchmark": benchmark.name,
        "language": benchmark.language,
        "scoring": benchmark.scoring,
        "dataset": dataset,
        "n_problems": len(problems),
        "limit": limit,
        "model": None,
        "samples_file": str(Path(samples_path).expanduser().resolve()) if samples_path else None,
        "generation": None,
        "ks": list(settings.ks),
        "paper": dict(benchmark.paper),
        "paper_source": benchmark.paper_source,
        "skipped": None,
        "scores": {},
        "timing": {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_dir": str(run_dir.resolve()),
    }
    console.print(
        f"[bold]{benchmark.name}[/bold]: {len(problems)} problems, {dataset.get('name')} {dataset.get('version')}, "
        f"scored by {benchmark.scoring.replace('_', ' ')}"
    )
    if benchmark.executes:
        reason = toolchain_problem(benchmark.language)
        if reason:
            results["skipped"] = f"{benchmark.language} toolchain missing: {reason}"
            console.print(f"[bold yellow]skipped {benchmark.name}:[/bold yellow] {reason}. No score is reported.")
            report.write(run_dir, results, [])
            log_results(cfg, results, console)
            return results

    prompts: dict[str, str]
    if samples_path:
        completions = read_samples(samples_path, problems, limited=limit is not None)
        if samples_continue == "dataset_prompt":
            by_id = {p.task_id: p for p in problems}
            completions = {t: [benchmark.from_dataset_prompt(by_id[t], c) for c in cs] for t, cs in completions.items()}
        # No model was conditioned: record the text the completions continue.
        prompts = {p.task_id: benchmark.prompt(p) for p in problems}
        # Refused before running anything, not after.
        check_samples(benchmark, settings.ks, min(len(v) for v in completions.values()), samples_path)
        truncated: set[str] = set()
        raw = None
    else:
        check_ks(benchmark, settings)
        m = cfg.model
        stage[0] = "loading the model"
        generator = load_generator(
            m.path,
            backend=m.get("backend", "auto"),
            device=m.get("device", "auto"),
            dtype=m.get("dtype", "auto"),
            revision=m.get("revision"),
            console=console,
        )
        results["model"] = generator.info
        settings = fit_to_context(settings, int(generator.model.max_length), console)
        results["generation"] = asdict(settings) | {"ks": list(settings.ks)}
        console.print(
            f"model {generator.info['source']} ({generator.info['backend']}, {generator.info['parameters']:,} parameters, "
            f"{generator.info['device']}); {settings.n_samples} sample(s) per problem at T={settings.temperature}, "
            f"top-p {settings.top_p}, {settings.max_new_tokens} new tokens"
        )
        stage[0] = "sampling"
        gen = generate_completions(
            generator,
            problems,
            settings,
            prompts=[benchmark.prompt(p) for p in problems],
            settings_key=_settings_key(benchmark, dataset, generator.info, settings),
            cache_file=run_dir / GENERATIONS_FILE,
            console=console,
            progress=progress,
        )
        raw = gen.raw
        prompts = gen.prompts
        by_id = {p.task_id: p for p in problems}
        completions = {t: [benchmark.postprocess(by_id[t], x) for x in texts] for t, texts in raw.items()}
        truncated = gen.prompt_truncated
        results["timing"].update(
            generation_s=round(gen.seconds, 2),
            generated_rows=gen.rows,
            new_tokens=gen.new_tokens,
            tokens_per_s=round(gen.new_tokens / gen.seconds, 1) if gen.rows else None,
            cached_units=gen.cached_units,
        )
        report.atomic_write(
            run_dir / SAMPLES_FILE,
            "".join(
                json.dumps({"task_id": p.task_id, "completion": c}) + "\n"
                for p in problems
                for c in completions[p.task_id]
            ),
        )

    stage[0] = "executing programs" if benchmark.executes else "scoring"
    t0 = time.perf_counter()
    records = score(
        benchmark,
        problems,
        completions,
        execution,
        cache_file=run_dir / EXECUTIONS_FILE,
        console=console,
        progress=progress,
    )
    results["timing"]["scoring_s"] = round(time.perf_counter() - t0, 2)
    by_id = {p.task_id: p for p in problems}
    for i, r in enumerate(records):
        # The prompt first: a reader sees what the model was given, then what it wrote.
        r = records[i] = {"task_id": r["task_id"], "sample": r["sample"], "prompt": prompts[r["task_id"]], **r}
        if samples_path and by_id[r["task_id"]].suffix is not None:
            r["suffix"] = by_id[r["task_id"]].suffix
        if r["task_id"] in truncated:
            r["prompt_truncated"] = True
        if raw is not None:
            r["raw"] = raw[r["task_id"]][r["sample"]]
    results["scores"] = benchmark.aggregate(records, settings.ks)
    results["counts"] = dict(Counter(r["status"] for r in records))
    results["n_samples"] = len(records)
    stage[0] = "writing results"
    report.write(run_dir, results, records)
    console.print(report.console_table([results]))
    console.print(f"results: {run_dir / report.RESULTS_JSON}")
    log_results(cfg, results, console)
    return results


# ------------------------------------------------------------------------------- logging
def log_results(cfg: DictConfig, results: dict[str, Any], console: Console | None = None) -> None:
    """Send scores and settings to the configured logger (``logger=csv|wandb``); every job of a
    multirun gets its own run, finished here so the next job's cannot merge into it."""
    if not cfg.get("logger"):
        return
    from hydra.utils import instantiate

    extra: dict[str, Any] = {}
    if str(cfg.logger.get("_target_", "")).endswith("WandbLogger"):
        extra["job_type"] = "eval"
        if cfg.logger.get("group") is None:
            extra["group"] = sweep_group("eval-")
        if cfg.logger.get("name") is None:
            gen = results.get("generation") or {}
            extra["name"] = f"{results['benchmark']}" + (f"-T{gen['temperature']}" if gen else "-samples")
    logger = instantiate(cfg.logger, **extra)
    flat = {
        "benchmark": results["benchmark"],
        "language": results["language"],
        "dataset_version": results["dataset"].get("version"),
        "n_problems": results["n_problems"],
        "model": results["model"],
        "generation": results["generation"],
        "samples_file": results["samples_file"],
        "skipped": results["skipped"],
    }
    logger.log_hyperparams(flat)
    metrics = {
        f"{results['benchmark']}/{k}": float(v)
        for k, v in results["scores"].items()
        if v is not None and math.isfinite(v)
    }
    metrics.update({f"{results['benchmark']}/{s}": float(n) for s, n in results.get("counts", {}).items()})
    if metrics:
        logger.log_metrics(metrics, step=0)
    logger.finalize("success")
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        logger.experiment.finish()
