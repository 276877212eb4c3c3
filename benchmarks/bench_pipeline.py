"""Throughput of every pipeline step, and of the whole `final` pipeline, on the demo corpus.

    python benchmarks/bench_pipeline.py [--corpus DIR] [--workers N] [--repeat N] [--reference] [--json]

Per step: MB/s per core = input MB / CPU seconds of one process running the step over every
record (steps after dedup see fewer records in a real run; here each sees the whole corpus, the
worst case). Whole pipeline: `final` through the local engine; MB/s per core = input MB / CPU
seconds of the driver and its workers together (getrusage of this process and of its children,
which the engine's pool waits for, forked or spawned), so it counts the engine's own work
(reading, pickling to workers, Parquet writing, the corpus-wide dedup, the report) too. CPU time
rather than wall time: the machine may be shared. Sharing still slows every CPU second (caches,
the sibling hyperthread): `--repeat N` runs the whole pipeline N times and reports the best and
the median. Then `santa prepare` once in a fresh process: the same, plus the interpreter's
start-up and the imports, which a run pays once whatever the input size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime + _kids_cpu()


def _kids_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _corpus(path: Path | None, max_files: int) -> Path:
    from santa.data.corpus import build_demo_corpus

    if path is not None:
        return path
    # The demo corpus of conf/data/demo.yaml (1,500 files per language), cached under cache/.
    out = ROOT / "cache" / "bench" / f"demo-corpus-{max_files}"
    build_demo_corpus(out, max_files_per_lang=max_files, max_bytes_per_file=100_000, val_fraction=0.02)
    return out


def _records(corpus: Path) -> list[dict[str, Any]]:
    from santa.data.records import read_records
    from santa.pipeline.inputs import normalise

    return [normalise(r, i, f"record {i}") for i, r in enumerate(read_records(sorted(corpus.rglob("*.jsonl.gz"))))]


def _tokenizer(records: list[dict[str, Any]]) -> Any:
    from santa.data.tokenizer import train_tokenizer

    return train_tokenizer((r["content"] for r in records[::2]), 8192)


def bench_steps(records: list[dict[str, Any]], reference: bool) -> list[dict[str, Any]]:
    from santa import registry
    from santa.filters.base import CorpusStep, StepContext
    from santa.pipeline.config import benchmark_dirs

    mb = sum(len(r["content"].encode()) for r in records) / 1e6
    tok = _tokenizer(records)
    context = StepContext(tokenizer=lambda: tok, data_dirs=benchmark_dirs(None))
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("pii", "pii", {}),
        ("basic", "basic", {}),
        ("stars", "stars", {"missing": "zero"}),
        ("comments (fast)", "comments", {}),
        ("fertility", "fertility", {}),
        ("exact_dedup", "exact_dedup", {}),
        ("near_dedup (stack)", "near_dedup", {"mode": "stack"}),
        ("near_dedup (dedup_alt)", "near_dedup", {"mode": "dedup_alt"}),  # the reference's SHA-1 hashing
        ("near_dedup (dedup_alt, fast)", "near_dedup", {"mode": "dedup_alt", "hashing": "fast"}),  # the presets'
        ("decontaminate", "decontaminate", {}),
    ]
    if reference:
        cases.insert(4, ("comments (reference)", "comments", {"method": "reference"}))
    rows = []
    for label, name, params in cases:
        try:
            step = registry.get("santa.filters", name)(**params)
        except registry.UnknownPluginError as exc:
            rows.append({"step": label, "error": str(exc)})
            continue
        step.name = name
        t0 = _cpu()
        step.setup(context)
        setup = _cpu() - t0
        batch = [dict(r) for r in records]
        t0 = time.perf_counter()
        c0 = _cpu()
        extra: dict[str, float] = {}
        if isinstance(step, CorpusStep):
            prepared = step.prepare(batch)
            c1 = _cpu()
            if prepared is not None:
                for r, p in zip(batch, prepared):
                    r["_prepared"] = p
            removed = len(step.process_corpus(batch))
            extra = {"prepare_s": round(c1 - c0, 2), "corpus_s": round(_cpu() - c1, 2)}
        else:
            removed = sum(not d.keep for d in step.process(batch))
        cpu = _cpu() - c0
        rows.append(
            {
                "step": label,
                "mb": round(mb, 2),
                "cpu_s": round(cpu, 2),
                "wall_s": round(time.perf_counter() - t0, 2),
                "mb_s_per_core": round(mb / cpu, 2),
                "setup_s": round(setup, 2),
                "removed": removed,
                **extra,
            }
        )
    return rows


def bench_pipeline(corpus: Path, preset: str, workers: int | None) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from rich.console import Console

    from santa.pipeline.config import build_config
    from santa.pipeline.engine import run_pipeline

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("prepare", overrides=["input=x", "output=y", f"pipeline={preset}"])
    with tempfile.TemporaryDirectory() as tmp:
        pcfg = build_config(
            pipeline=cfg.pipeline,
            engine={"name": "local", "workers": workers},
            input=str(corpus),
            output=Path(tmp) / "out",
            progress=False,
        )
        c0, t0 = _cpu(), time.perf_counter()
        result = run_pipeline(pcfg, Console(file=open(os.devnull, "w")))
        cpu, wall = _cpu() - c0, time.perf_counter() - t0
    report = result.report
    mb = report["steps"][0]["read"]["bytes"] / 1e6
    return {
        "pipeline": preset,
        "steps": [s["name"] for s in report["steps"]][1:],
        "mb": round(mb, 2),
        "workers": pcfg.workers or os.cpu_count(),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "mb_s_per_core": round(mb / cpu, 2),
        "mb_s_wall": round(mb / wall, 2),
        "kept_pct": round(100 * report["totals"]["kept"]["files"] / report["totals"]["read"]["files"], 1),
        "corpus_step_s": {s["name"]: s["corpus_seconds"] for s in report["steps"] if "corpus_seconds" in s},
    }


def bench_command(corpus: Path, preset: str, workers: int | None) -> dict[str, Any]:
    """`santa prepare` as a user runs it, in a fresh process: its CPU and its workers' (the
    process waits for them), interpreter start-up and imports included."""
    santa = Path(sys.executable).with_name("santa")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(santa),
            "prepare",
            f"input={corpus}",
            f"output={Path(tmp) / 'out'}",
            f"pipeline={preset}",
            "progress=false",
        ] + ([f"engine.workers={workers}"] if workers else [])
        c0, t0 = _kids_cpu(), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        cpu, wall = _kids_cpu() - c0, time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        report = json.loads((Path(tmp) / "out" / "report.json").read_text())
    mb = report["steps"][0]["read"]["bytes"] / 1e6
    return {
        "pipeline": preset,
        "mb": round(mb, 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "mb_s_per_core": round(mb / cpu, 2),
        "mb_s_wall": round(mb / wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, help="a corpus directory (default: the demo corpus, built if needed)")
    ap.add_argument(
        "--max-files",
        type=int,
        default=1500,
        help="files per language of the demo corpus (default 1500, as conf/data/demo.yaml)",
    )
    ap.add_argument("--pipeline", default="final", help="preset for the whole-pipeline figure (default final)")
    ap.add_argument("--workers", type=int, default=None, help="local engine workers (default: every core)")
    ap.add_argument("--reference", action="store_true", help="also time the comments step's reference method (slow)")
    ap.add_argument("--skip-steps", action="store_true", help="only the whole pipeline")
    ap.add_argument("--repeat", type=int, default=1, help="whole-pipeline runs (best and median reported)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args(argv)
    corpus = _corpus(args.corpus, args.max_files)
    out: dict[str, Any] = {"corpus": str(corpus), "cpus": os.cpu_count()}
    # The whole pipeline first, in a process as `santa prepare` has it (the step benchmarks
    # train a tokenizer, whose threads would make the engine spawn its workers instead of forking).
    runs = [bench_pipeline(corpus, args.pipeline, args.workers) for _ in range(max(1, args.repeat))]
    command = bench_command(corpus, args.pipeline, args.workers)
    out["command"] = command
    if not args.skip_steps:
        out["steps"] = bench_steps(_records(corpus), args.reference)
    out["pipeline"] = min(runs, key=lambda r: r["cpu_s"])
    if len(runs) > 1:
        rates = sorted(r["mb_s_per_core"] for r in runs)
        out["repeats"] = {
            "mb_s_per_core": [r["mb_s_per_core"] for r in runs],
            "best": rates[-1],
            "median": statistics.median(rates),
        }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if "steps" in out:
        t = Table(title=f"pipeline steps, one process, on {corpus}")
        for col in ("step", "MB", "CPU s", "MB/s per core", "set-up s", "removed", "note"):
            t.add_column(col, justify="left" if col in ("step", "note") else "right")
        for r in out["steps"]:
            if "error" in r:
                t.add_row(r["step"], "", "", "", "", "", r["error"][:60])
                continue
            note = f"prepare {r['prepare_s']} s + corpus {r['corpus_s']} s" if "prepare_s" in r else ""
            t.add_row(
                r["step"],
                f"{r['mb']:.1f}",
                f"{r['cpu_s']:.2f}",
                f"{r['mb_s_per_core']:.1f}",
                f"{r['setup_s']:.2f}",
                str(r["removed"]),
                note,
            )
        console.print(t)
    for p in runs:
        console.print(
            f"[bold]{p['pipeline']}[/bold] ({', '.join(p['steps'])}) on {p['mb']} MB with {p['workers']} workers: "
            f"{p['wall_s']} s wall, {p['cpu_s']} s CPU -> [bold]{p['mb_s_per_core']} MB/s per core[/bold] "
            f"({p['mb_s_wall']} MB/s wall); kept {p['kept_pct']} % of files; corpus-wide steps {p['corpus_step_s']}"
        )
    if "repeats" in out:
        r = out["repeats"]
        console.print(
            f"{len(runs)} runs: best [bold]{r['best']}[/bold], median [bold]{r['median']}[/bold] MB/s per core"
        )
    console.print(
        f"[bold]santa prepare pipeline={command['pipeline']}[/bold] in a fresh process (start-up and imports included): "
        f"{command['wall_s']} s wall, {command['cpu_s']} s CPU -> [bold]{command['mb_s_per_core']} MB/s per core[/bold] "
        f"({command['mb_s_wall']} MB/s wall)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
