"""The run's report (report.json, the printed table, histograms), its accounting checks, and
publishing the outputs so that they appear complete or not at all.

Output directory::

    data/part-UUUUU-KKK.parquet     clean records, The Stack's fields (content as redacted)
    rejects/*.parquet               every dropped record + reject_step/_stat/_reason/_where/_id/_details
    annotations/*.parquet           details of kept records (PII redaction spans, parser notes)
    duplicates.parquet              each file a dedup step removed -> the kept file it duplicated
    plots/<step>.png                histograms of each step's statistic, per language
    report.json                     counts per step and language, parameters, timings
    _SUCCESS                        written last: the key of the config and the list of files
"""

from __future__ import annotations

import os
import shutil
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from santa.filters.base import CorpusStep, DecisionTable, Step
from santa.pipeline.inputs import Unit
from santa.pipeline.parquet import count_rows, write_json, write_table
from santa.pipeline.plan import FORMAT, INPUT_STEP, SUCCESS, AccountingError, Segment, renamed_plugin

if TYPE_CHECKING:
    from santa.pipeline.spec import PipelineConfig

_OUTPUTS = ("data", "rejects", "annotations", "plots", "duplicates.parquet", "report.json")


def _zero() -> dict[str, int]:
    return {"files": 0, "bytes": 0}


def _summary(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    q = np.quantile(a, [0.0, 0.1, 0.5, 0.9, 1.0])
    return {
        "n": int(a.size),
        "min": float(q[0]),
        "p10": float(q[1]),
        "p50": float(q[2]),
        "p90": float(q[3]),
        "max": float(q[4]),
        "mean": float(a.mean()),
    }


def build(
    *,
    key: str,
    cfg: PipelineConfig,
    steps: list[Step],
    segments: list[Segment],
    units: list[Unit],
    markers: dict[tuple[int, int], dict[str, Any] | None],
    decisions: dict[str, DecisionTable],
    corpus_seconds: dict[str, float],
    seconds: float,
    resumed_units: int,
    engine: str,
) -> dict[str, Any]:
    order = [INPUT_STEP] + [s.name for s in steps]
    counts: dict[str, dict[str, list[int]]] = {name: {} for name in order}
    # Flat arrays of doubles (8 bytes a value; a list of Python floats costs 32): a statistic per
    # file per step would otherwise be the largest thing the driver holds at the end.
    stats: dict[str, dict[str, array[float]]] = {}
    notes: dict[str, dict[str, int]] = {}
    errors: list[str] = []
    for m in markers.values():
        if m is None:
            raise AccountingError("a unit of work has no marker after the run")
        for step, langs in m["counts"].items():
            for lang, c in langs.items():
                mine = counts[step].setdefault(lang, [0, 0, 0, 0])
                for i in range(4):
                    mine[i] += c[i]
        for step, langs in m["stats"].items():
            for lang, values in langs.items():
                stats.setdefault(step, {}).setdefault(lang, array("d")).extend(values)
        # Aggregated: the unit's own copy (8 bytes a file a step) is not read again; publish reads
        # only the markers' file lists.
        m["stats"] = {}
        for step, n in m["notes"].items():
            for note, k in n.items():
                notes.setdefault(step, {})[note] = notes.setdefault(step, {}).get(note, 0) + k
        errors.extend(m["errors"])
    kinds = {s.name: ("corpus" if isinstance(s, CorpusStep) else "record") for s in steps}
    report_steps = []
    for name in order:
        by_lang: dict[str, dict[str, Any]] = {}
        total = {"read": _zero(), "kept": _zero(), "rejected": _zero()}
        for lang, (rf, rb, xf, xb) in sorted(counts[name].items()):
            entry: dict[str, Any] = {
                "read": {"files": rf, "bytes": rb},
                "kept": {"files": rf - xf, "bytes": rb - xb},
                "rejected": {"files": xf, "bytes": xb},
            }
            entry["removed_pct"] = {"files": _pct(xf, rf), "bytes": _pct(xb, rb)}
            by_lang[lang] = entry
            for k in ("read", "kept", "rejected"):
                total[k]["files"] += entry[k]["files"]
                total[k]["bytes"] += entry[k]["bytes"]
        step_obj = next((s for s in steps if s.name == name), None)
        entry = {
            "name": name,
            "kind": "input" if name == INPUT_STEP else kinds[name],
            "params": step_obj.params() if step_obj is not None else {"max_file_bytes": cfg.max_file_bytes},
            **({"plugin": plugin} if step_obj is not None and (plugin := renamed_plugin(step_obj)) else {}),
            **total,
            "removed_pct": {
                "files": _pct(total["rejected"]["files"], total["read"]["files"]),
                "bytes": _pct(total["rejected"]["bytes"], total["read"]["bytes"]),
            },
            "by_lang": by_lang,
            "notes": notes.get(name, {}),
            "stat": {lang: _summary(v) for lang, v in sorted(stats.get(name, {}).items()) if v},
        }
        if name in corpus_seconds:
            entry["corpus_seconds"] = round(corpus_seconds[name], 3)
        report_steps.append(entry)
    check_accounting(report_steps)
    first, last = report_steps[0], report_steps[-1]
    return {
        "format": FORMAT,
        "key": key,
        "engine": engine,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 3),
        "resumed_units": resumed_units,
        "steps": report_steps,
        "totals": {
            "read": first["read"],
            "kept": last["kept"],
            "rejected": {
                "files": first["read"]["files"] - last["kept"]["files"],
                "bytes": first["read"]["bytes"] - last["kept"]["bytes"],
            },
        },
        "input_errors": {"count": len(errors), "examples": errors[:50]},
        "inputs": [{"unit": u.index, "path": u.path, "kind": u.kind, "data": []} for u in units],
        "_stats": stats,  # for the plots; not written
        # Each plugin names its own statistic (``Step.stat_label``); for the plots, not written.
        "_stat_labels": {s.name: getattr(s, "stat_label", "") for s in steps},
    }


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 3) if whole else 0.0


def check_accounting(steps: list[dict[str, Any]]) -> None:
    """kept + rejected = read for every step and language; each step reads what the one before
    kept (files: a transform may change bytes); otherwise something disappeared."""
    for s in steps:
        for lang, e in [("all", s)] + list(s["by_lang"].items()):
            for unit in ("files", "bytes"):
                if e["kept"][unit] + e["rejected"][unit] != e["read"][unit] or e["kept"][unit] < 0:
                    raise AccountingError(f"step {s['name']} ({lang}): kept + rejected != read ({unit}): {e}")
    for prev, cur in zip(steps, steps[1:]):
        langs = set(prev["by_lang"]) | set(cur["by_lang"])
        for lang in langs:
            kept = prev["by_lang"].get(lang, {}).get("kept", _zero())["files"]
            read = cur["by_lang"].get(lang, {}).get("read", _zero())["files"]
            if kept != read:
                raise AccountingError(f"step {cur['name']} read {read} {lang} files but {prev['name']} kept {kept}")


_DUPLICATES_SCHEMA = pa.schema(
    [
        ("step", pa.string()),
        ("id", pa.int64()),
        ("repo", pa.string()),
        ("path", pa.string()),
        ("duplicate_of", pa.int64()),
        ("duplicate_of_repo", pa.string()),
        ("duplicate_of_path", pa.string()),
        ("similarity", pa.float64()),
        ("reason", pa.string()),
    ]
)


def _duplicates(segments: list[Segment], decisions: dict[str, DecisionTable]) -> pa.Table:
    """One row per file a corpus step removed as a duplicate, from the step's saved decisions
    (which carry the files' repos and paths: the spills are gone by now), column by column."""
    parts = []
    for seg in segments:
        name = seg.prepare_for
        table = decisions.get(name) if name else None
        if table is None or not len(table) or "duplicate_of_repo" not in table.table.column_names:
            continue
        t = table.table.filter(table.table.column("duplicate_of").is_valid())
        # The report's similarity is the step's statistic (the Jaccard or its estimate, 1.0 for exact).
        cols = {k: t.column("stat" if k == "similarity" else k) for k in _DUPLICATES_SCHEMA.names if k != "step"}
        t = pa.table({"step": pa.array([name] * t.num_rows, pa.string()), **cols})
        parts.append(t.select(_DUPLICATES_SCHEMA.names).cast(_DUPLICATES_SCHEMA))
    return pa.concat_tables(parts) if parts else _DUPLICATES_SCHEMA.empty_table()


def _plots(
    stats: dict[str, dict[str, array[float]]], steps: list[dict[str, Any]], labels: dict[str, str], out: Path
) -> list[str]:
    from santa.pipeline.plots import histogram

    written = []
    for step in steps:
        name = step["name"]
        per_lang = {k: np.asarray(v, dtype=float) for k, v in stats.get(name, {}).items() if v}
        if not per_lang:
            continue
        params = step.get("params", {})
        path = out / f"{name}.png"
        histogram(
            path,
            per_lang,
            title=f"{name}: removed {step['removed_pct']['files']:.1f} % of files",
            xlabel=labels.get(name) or f"{name} statistic",
            lines=tuple(float(params[k]) for k in ("min_ratio", "max_ratio") if k in params),
        )
        written.append(path.name)
    return written


def publish(
    out: Path,
    work: Path,
    report: dict[str, Any],
    segments: list[Segment],
    units: list[Unit],
    markers: dict[tuple[int, int], dict[str, Any] | None],
    decisions: dict[str, DecisionTable],
    console: Console,
) -> None:
    stage = work / "publish"
    shutil.rmtree(stage, ignore_errors=True)
    for d in ("data", "rejects", "annotations", "plots"):
        (stage / d).mkdir(parents=True)
    last = segments[-1].index
    units_dir = work / "units"
    for entry in report["inputs"]:
        u = entry["unit"]
        m = markers[(last, u)]
        assert m is not None
        for k, name in enumerate(m["files"]["data"]):
            rel = f"data/part-{u:05d}-{k:03d}.parquet"
            os.replace(units_dir / name, stage / rel)
            entry["data"].append(rel)
    for seg in segments:
        for u in units:
            m = markers[(seg.index, u.index)]
            assert m is not None
            for kind in ("rejects", "annotations"):
                for k, name in enumerate(m["files"][kind]):
                    os.replace(units_dir / name, stage / kind / f"s{seg.index}-part-{u.index:05d}-{k:03d}.parquet")
    dups = _duplicates(segments, decisions)
    if dups.num_rows:
        write_table(stage / "duplicates.parquet", dups)
    stats = report.pop("_stats")
    plots = _plots(stats, report["steps"], report.pop("_stat_labels"), stage / "plots")
    # Nothing disappeared: the files on disk hold exactly what the counts say.
    data_files = sorted((stage / "data").glob("*.parquet"))
    reject_files = sorted((stage / "rejects").glob("*.parquet"))
    n_data, n_rejects = count_rows(data_files), count_rows(reject_files)
    rejected = sum(s["rejected"]["files"] for s in report["steps"])
    if n_data != report["totals"]["kept"]["files"] or n_rejects != rejected:
        raise AccountingError(
            f"on disk: {n_data} clean + {n_rejects} rejected rows; counts say "
            f"{report['totals']['kept']['files']} kept + {rejected} rejected"
        )
    if n_data + n_rejects != report["steps"][0]["read"]["files"]:
        raise AccountingError(f"{n_data} clean + {n_rejects} rejected != {report['steps'][0]['read']['files']} read")
    report["outputs"] = {
        "data": len(data_files),
        "rejects": len(reject_files),
        "annotations": len(list((stage / "annotations").glob("*.parquet"))),
        "duplicates": "duplicates.parquet" if dups.num_rows else None,
        "duplicate_rows": dups.num_rows,
        "plots": [f"plots/{p}" for p in plots],
    }
    write_json(stage / "report.json", report)
    # Swap in: _SUCCESS goes first, and comes back last.
    (out / SUCCESS).unlink(missing_ok=True)
    for name in _OUTPUTS:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if (stage / name).exists():
            os.replace(stage / name, target)
    files = sorted(
        str(p.relative_to(out))
        for name in _OUTPUTS
        for p in ([out / name] if (out / name).is_file() else (out / name).rglob("*") if (out / name).is_dir() else [])
        if p.is_file()
    )
    write_json(out / SUCCESS, {"format": FORMAT, "key": report["key"], "files": files})


def _mb(n: int) -> str:
    return f"{n / 1e6:,.2f}"


def report_table(report: dict[str, Any]) -> Table:
    t = report["totals"]
    table = Table(
        title=f"pipeline report ({report['engine']} engine, {report['seconds']:.1f} s)",
        caption=(
            f"read {t['read']['files']:,} files ({_mb(t['read']['bytes'])} MB), kept {t['kept']['files']:,} "
            f"({_mb(t['kept']['bytes'])} MB); {report['input_errors']['count']} input errors"
        ),
    )
    for col, just in (
        ("step", "left"),
        ("language", "left"),
        ("files", "right"),
        ("kept", "right"),
        ("removed", "right"),
        ("MB", "right"),
        ("MB removed", "right"),
    ):
        table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for s in report["steps"]:
        rows = [("all", s)] + (list(s["by_lang"].items()) if len(s["by_lang"]) > 1 else [])
        for i, (lang, e) in enumerate(rows):
            table.add_row(
                f"[bold]{s['name']}[/bold]" if i == 0 else "",
                lang,
                f"{e['read']['files']:,}",
                f"{e['kept']['files']:,}",
                f"{e['removed_pct']['files']:.1f} %",
                _mb(e["read"]["bytes"]),
                f"{e['removed_pct']['bytes']:.1f} %",
            )
        table.add_section()
    return table


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    console.print(report_table(report))
    errors = report["input_errors"]
    for msg in errors["examples"][:5]:
        console.print(f"[yellow]input error[/yellow] {msg}", highlight=False)
    for s in report["steps"]:
        for note, n in list(s["notes"].items())[:3]:
            console.print(f"[dim]{s['name']}: {n:,} x {note}[/dim]", highlight=False)
    if errors["count"] > 5:
        console.print(f"[yellow]... and {errors['count'] - 5} more input errors (rejects/, reject_step=input)[/yellow]")
