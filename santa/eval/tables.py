"""Evaluation outputs: ``results.json`` (scores, settings, one entry per sample) and a markdown
table of our numbers beside the paper's, for one run or a whole sweep.

``python -m santa.eval.tables DIR [DIR ...] [-o table.md]`` collects every results.json under the
given directories (a multirun sweep, several runs) into one table.

results.json (``schema: santa.eval.results/1``), the keys a reader needs:

- ``benchmark``, ``language``, ``scoring`` (the benchmark's label: execution, exact_match, ...), ``dataset``
  (name, version, files with sha256), ``n_problems``, ``limit``;
- ``scores``: ``{"pass@1": ..., "pass@10": ...}`` or ``{"exact_match": ...}``; ``counts``: samples
  per status; ``skipped``: why nothing was scored (a missing toolchain), else null;
- ``model`` (path, backend, device, dtype, parameters) and ``generation`` (temperature, top_p,
  top_k, n_samples, max_new_tokens, batch_size, fim_mode, seed, ks), or ``samples_file`` when
  completions came from a file (then ``generation`` is null);
- ``ks``: the k of every pass@k asked for; ``timing``: generation and scoring seconds, new tokens;
- ``paper``, ``paper_source``: the published numbers the table compares with;
- ``samples``: one entry per sample in problem order: ``task_id``, ``sample``, ``prompt`` (the
  exact text the model was conditioned on: its prompt tokens decoded; for a samples file, the
  text its completions continue, with ``suffix`` for infilling), ``completion``,
  ``passed``, ``status`` (passed | failed | timeout | error), and for executed samples
  ``returncode``, ``duration``, ``stderr_tail`` (failures only); ``raw`` is the model's
  continuation before the stop sequences cut it; ``prompt_truncated`` marks prompts that had to
  be cut to fit the model's context.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


def atomic_write(path: Path, text: str) -> None:
    # A reader (or a resumed run) never sees half a file.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(run_dir: str | Path, results: dict[str, Any], records: Sequence[dict[str, Any]]) -> Path:
    """Write ``results.json`` (with the per-sample records) and ``results.md``; returns the json path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RESULTS_JSON
    atomic_write(path, json.dumps({**results, "samples": list(records)}, indent=1, ensure_ascii=False) + "\n")
    atomic_write(run_dir / RESULTS_MD, markdown_table([results]) + "\n")
    return path


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_JSON
    return json.loads(path.read_text(encoding="utf-8"))


def collect(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Every results.json at or under ``paths``, in path order."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(p.rglob(RESULTS_JSON))
    return [json.loads(f.read_text(encoding="utf-8")) for f in found]


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


COLUMNS = ("benchmark", "dataset", "metric", "santa", "paper", "problems", "n", "T", "top-p", "source")


def rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """Table rows of one results.json: one per metric computed (or one saying it was skipped)."""
    ds = results.get("dataset") or {}
    gen = results.get("generation") or {}
    model = results.get("model") or {}
    common = {
        "benchmark": results["benchmark"],
        "dataset": f"{ds.get('name', '?')} {ds.get('version', '')}".strip(),
        "problems": str(results.get("n_problems", "—")),
        "n": str(gen.get("n_samples", "—")) if gen else _samples_per_problem(results),
        "T": _fmt(gen.get("temperature"), 2) if gen else "—",
        "top-p": _fmt(gen.get("top_p"), 2) if gen else "—",
        "source": model.get("source") or results.get("samples_file") or "—",
    }
    paper = results.get("paper") or {}
    if results.get("skipped"):
        return [{**common, "metric": "—", "santa": f"skipped: {results['skipped']}", "paper": "—"}]
    return [
        {**common, "metric": metric, "santa": _fmt(value), "paper": _fmt(paper.get(metric), 2)}
        for metric, value in (results.get("scores") or {}).items()
    ]


def _samples_per_problem(results: dict[str, Any]) -> str:
    n, p = results.get("n_samples"), results.get("n_problems")
    if not n or not p:
        return "—"
    return str(n // p) if n % p == 0 else f"{n / p:.1f}"


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """Our numbers beside the paper's (SantaCoder 1.1B), one row per benchmark and metric."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    sources = []
    for res in results:
        for row in rows(res):
            lines.append("| " + " | ".join(row[c].replace("|", "\\|") for c in COLUMNS) + " |")
        if res.get("paper_source") and res["paper_source"] not in sources:
            sources.append(res["paper_source"])
    if sources:
        lines.append("")
        lines += [f"paper: {s}" for s in sources]
    return "\n".join(lines)


CONSOLE_COLUMNS = ("benchmark", "metric", "santa", "paper", "problems", "n", "T")


def console_table(results: Sequence[dict[str, Any]]) -> Table:
    """The markdown table's essentials, narrow enough for a terminal."""
    table = Table(title="evaluation (paper: SantaCoder 1.1B)")
    for c in CONSOLE_COLUMNS:
        table.add_column(c, overflow="fold", style="bold green" if c == "santa" else None)
    for res in results:
        for row in rows(res):
            table.add_row(*(row[c] for c in CONSOLE_COLUMNS))
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="results.json files or directories holding them (a sweep)")
    parser.add_argument("-o", "--output", help="write the markdown table here (default: print it)")


def run(args: argparse.Namespace) -> int:
    results = collect(args.paths)
    if not results:
        print(f"no {RESULTS_JSON} under {', '.join(args.paths)}", file=sys.stderr)
        return 2
    text = markdown_table(results) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m santa.eval.tables", description="results.json -> markdown table")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
