"""``santa report <multirun dir>``: the ablation sweep's outputs as the paper's tables.

Reads what ``python train.py -m experiment=mha,no_fim,fim,stars,fertility,comments,dedup_alt,final``
leaves on disk and writes ``report.md``, ``report.csv`` and PNG plots to ``<sweep>/report/``:

- the jobs, each with its state, so a sweep still running (or one that broke) reads as such;
- pass@k per variant and language (MultiPL-E HumanEval and MBPP), beside the paper's;
- FIM single-line exact match per variant and language, beside the paper's;
- % of data removed per filter and language, from the pipeline reports (each data variant once);
- a short training table (steps, final losses).

Sweep layout::

    <sweep>/multirun.yaml             Hydra, at sweep start: which jobs are expected
    <sweep>/<n>/.hydra/overrides.yaml this job's overrides (its identity)
    <sweep>/<n>/job.json              santa-job/1: state, pid, pipeline report, benchmarks, results
    <sweep>/<n>/eval/<b>/results.json santa.eval.results/1 (santa/eval/tables.py)

A plain ``python evaluate.py -m benchmark=...`` sweep (``<n>/results.json``, no job.json) and a
single run directory work too: jobs that differ only in ``benchmark=`` are one variant.

The paper's numbers come from ``paper_ablations.yaml`` beside this module; each names its table.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from santa.errors import SantaError
from santa.runs import JOB_FILE

REPORT_DIR = "report"
FORMATS = ("md", "csv", "png")
CSV_COLUMNS = ("table", "variant", "language", "metric", "ours", "paper", "state", "paper_source")

# Benchmark languages (MultiPL-E's names) and The Stack's, in the order the tables use.
LANGS = ("py", "java", "js")
LANG_NAME = {"py": "Python", "java": "Java", "js": "JavaScript"}
STACK_LANG = {"Python": "py", "Java": "java", "JavaScript": "js"}

# benchmark-name prefix -> (table id, title); the suffix is the language.
SUITES = {
    "humaneval": ("multiple_humaneval_", "MultiPL-E HumanEval"),
    "mbpp": ("multiple_mbpp_", "MultiPL-E MBPP"),
}
FIM_PREFIX = "fim_"

# Sec. 5.4: pass@1 from samples at T=0.2, pass@10 and pass@100 at T=0.8.
PAPER_TEMPERATURE = {"pass@1": 0.2, "pass@10": 0.8, "pass@100": 0.8}

# Filters whose "% removed" the paper reports (Table 3); near_dedup counts in its dedup_alt mode.
PAPER_FILTERS = ("stars", "comments", "dedup_alt", "fertility")

FINISHED, FAILED, RUNNING, CRASHED, INTERRUPTED = "finished", "failed", "running", "crashed", "interrupted"
NOT_STARTED, NO_JOB_JSON, INCOMPLETE, NO_RESULTS = "not started", "no job.json", "incomplete", "no results yet"


class NotASweepError(SantaError):
    """The directory given to ``santa report`` holds no sweep, run or results to report on."""


# --------------------------------------------------------------------------------------------
# The paper's numbers


def load_paper(path: Path | None = None) -> dict[str, Any]:
    """paper_ablations.yaml (package data), or the file given."""
    if path is None:
        try:
            from importlib.resources import files

            text = files("santa.sweep").joinpath("paper_ablations.yaml").read_text(encoding="utf-8")
        except (FileNotFoundError, ModuleNotFoundError, OSError):
            text = (Path(__file__).with_name("paper_ablations.yaml")).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


@dataclass(frozen=True)
class PaperValue:
    value: float | None
    source: str = ""
    approx: bool = False


NO_PAPER = PaperValue(None)


class Paper:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.aliases = {str(k): str(v) for k, v in (data.get("aliases") or {}).items()}
        self.names = {str(k): str(v) for k, v in (data.get("variants") or {}).items()}

    def variant(self, experiment: str | None) -> str | None:
        if not experiment:
            return None
        name = str(experiment)
        return self.aliases.get(name, self.aliases.get(name.lower(), name))

    def name(self, experiment: str | None) -> str:
        return self.names.get(self.variant(experiment) or "", "")

    def score(self, table: str, experiment: str | None, lang: str, metric: str) -> PaperValue:
        block = (self.data.get(table) or {}).get(self.variant(experiment) or "")
        if not isinstance(block, dict):
            return NO_PAPER
        raw = (block.get(lang) or {}).get(metric)
        return _paper_value(raw, str(block.get("source", "")), bool(block.get("approx", False)))

    def metrics(self, table: str) -> list[str]:
        found: set[str] = set()
        for block in (self.data.get(table) or {}).values():
            for lang in LANGS:
                found |= set((block or {}).get(lang) or {})
        return sorted(found, key=_metric_order)

    def removed_pct(self, data_variant: str | None, lang: str) -> PaperValue:
        """% of volume a data variant removed relative to the base data (Table 3), lang or "all"."""
        vol = self.data.get("data_volume_gb") or {}
        name = self.variant(data_variant) or ""
        if name not in vol or name in ("base", "source") or "base" not in vol:
            return NO_PAPER
        base, after = vol["base"], vol[name]
        langs = LANGS if lang == "all" else (lang,)
        try:
            b = sum(float(_num(base[x])) for x in langs)
            a = sum(float(_num(after[x])) for x in langs)
        except (KeyError, TypeError, ValueError):
            return NO_PAPER
        approx = any(isinstance(v, dict) and v.get("approx") for v in list(base.values()) + list(after.values()))
        return PaperValue(round(100.0 * (1.0 - a / b), 1), str(vol.get("source", "")), approx)

    def filter_text(self, data_variant: str | None) -> str:
        return str((self.data.get("data_removed_text") or {}).get(self.variant(data_variant) or "", ""))


def _num(raw: Any) -> Any:
    return raw.get("value") if isinstance(raw, dict) else raw


def _paper_value(raw: Any, source: str, approx: bool) -> PaperValue:
    if isinstance(raw, dict):
        approx = approx or bool(raw.get("approx", False))
        source = str(raw.get("source", source))
        raw = raw.get("value")
    if raw is None:
        return NO_PAPER
    return PaperValue(float(raw), source, approx)


def _metric_order(metric: str) -> tuple[int, str]:
    m = re.fullmatch(r"pass@(\d+)", metric)
    return (int(m.group(1)), metric) if m else (10**9, metric)


# --------------------------------------------------------------------------------------------
# Reading the sweep


@dataclass
class RunDir:
    """One job directory: what Hydra and santa wrote there."""

    path: Path
    overrides: list[str]
    job: dict[str, Any] | None
    config: dict[str, Any] | None
    summary: dict[str, Any] | None
    results: dict[str, dict[str, Any]]  # benchmark -> results.json (without samples)
    result_paths: dict[str, Path]


@dataclass
class Variant:
    """A job of the sweep (or, for an evaluate.py sweep, the jobs differing only in benchmark=)."""

    key: tuple[str, ...]
    overrides: list[str]
    runs: list[RunDir] = field(default_factory=list)
    expected: bool = False
    label: str = ""
    experiment: str | None = None
    state: str = NOT_STARTED
    detail: str = ""
    planned: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    sweep_benchmarks: list[str] = field(default_factory=list)  # benchmark=... of its jobs in multirun.yaml

    @property
    def job(self) -> dict[str, Any] | None:
        jobs = [r.job for r in self.runs if r.job]
        return max(jobs, key=lambda j: str(j.get("updated") or "")) if jobs else None

    @property
    def run_dir(self) -> Path | None:
        return self.runs[0].path if self.runs else None

    @property
    def ok(self) -> bool:
        return self.state == FINISHED


@dataclass
class Sweep:
    path: Path
    variants: list[Variant]
    notes: list[str]  # about the sweep itself (sweeper, unreadable files)
    single: bool = False

    @property
    def finished(self) -> int:
        return sum(v.ok for v in self.variants)

    @property
    def partial(self) -> bool:
        return any(not v.ok for v in self.variants)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _override_value(override: str) -> str:
    return override.split("=", 1)[1] if "=" in override else ""


def _is_benchmark(override: str) -> bool:
    return _override_key(override) == "benchmark"


def _variant_key(overrides: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(o for o in overrides if not _is_benchmark(o)))


def _is_run_dir(path: Path) -> bool:
    return (path / JOB_FILE).is_file() or (path / ".hydra").is_dir() or (path / "results.json").is_file()


def _sort_key(path: Path) -> tuple[int, int, str]:
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def discover(path: Path) -> list[Path]:
    """The job directories of a sweep: its children that Hydra or santa wrote into."""
    children = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != REPORT_DIR]
    return sorted((p for p in children if _is_run_dir(p)), key=_sort_key)


def _results_of(run: Path, job: dict[str, Any] | None) -> tuple[dict[str, dict[str, Any]], dict[str, Path]]:
    paths: list[Path] = []
    for rel in ((job or {}).get("evaluation") or {}).values():
        p = Path(rel) if Path(rel).is_absolute() else run / rel
        paths.append(p)
    if (run / "results.json").is_file():
        paths.append(run / "results.json")
    if (run / "eval").is_dir():
        paths += sorted((run / "eval").glob("*/results.json"))
    results: dict[str, dict[str, Any]] = {}
    where: dict[str, Path] = {}
    for p in paths:
        if p in where.values() or not p.is_file():
            continue
        res = _read_json(p)
        if not res or "benchmark" not in res:
            continue
        res.pop("samples", None)
        results[str(res["benchmark"])] = res
        where[str(res["benchmark"])] = p
    return results, where


def read_run(path: Path) -> RunDir:
    overrides = _read_yaml(path / ".hydra" / "overrides.yaml")
    config = _read_yaml(path / ".hydra" / "config.yaml")
    job = _read_json(path / JOB_FILE)
    results, where = _results_of(path, job)
    return RunDir(
        path=path,
        overrides=[str(o) for o in overrides] if isinstance(overrides, list) else [],
        job=job,
        config=config if isinstance(config, dict) else None,
        summary=_read_json(path / "summary.json"),
        results=results,
        result_paths=where,
    )


def expected_jobs(multirun: dict[str, Any]) -> tuple[list[list[str]] | None, str | None]:
    """The overrides of every job the sweep will launch, as Hydra's basic sweeper expands them,
    or None (and why) when another sweeper decides (Optuna, Ax, ...)."""
    hydra = multirun.get("hydra") or {}
    sweeper = hydra.get("sweeper") or {}
    target = str(sweeper.get("_target_") or "")
    if target and not target.endswith("BasicSweeper"):
        return None, f"sweeper {target} chooses its jobs as it goes: only the jobs started so far are listed"
    params = sweeper.get("params") or {}
    args = [f"{k}={v}" for k, v in params.items()] + [
        str(a) for a in ((hydra.get("overrides") or {}).get("task") or [])
    ]
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(args)
        return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch], None
    except Exception:  # noqa: BLE001 - glob sweeps need Hydra's config loader; fall back to commas
        if any(re.search(r"=\s*glob\(", a) for a in args):
            return (
                None,
                "multirun.yaml sweeps a glob(...): expected jobs unknown, only the jobs started so far are listed",
            )
        lists = []
        for arg in args:
            key, _, value = arg.partition("=")
            lists.append([f"{key}={v}" for v in _split_commas(value)] or [arg])
        return [list(job) for job in itertools.product(*lists)], None


def _split_commas(value: str) -> list[str]:
    out, depth, quote, cur = [], 0, "", ""
    for ch in value:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    out.append(cur)
    return out


def pid_alive(pid: Any) -> bool:
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    except OSError:
        return False
    return True


def _job_state(job: dict[str, Any]) -> tuple[str, str]:
    state = str(job.get("state") or "?")
    if state == FINISHED:
        return FINISHED, ""
    if state == FAILED:
        return FAILED, str(job.get("error") or "no error recorded")
    if state == INTERRUPTED:
        return (
            INTERRUPTED,
            f"stopped by {job.get('signal') or 'a signal'} at step {job.get('global_step')}; resume: {job.get('resume') or '?'}",
        )
    host = job.get("host")
    updated = job.get("updated") or "?"
    if host and host != socket.gethostname():
        # Another machine's pid means nothing here: report what job.json says.
        return RUNNING, f"{state} on {host} (last update {updated}; its pid cannot be checked from here)"
    if pid_alive(job.get("pid")):
        return RUNNING, f"{state}, pid {job.get('pid')}"
    return CRASHED, f"stopped while {state} (pid {job.get('pid')} gone; last update {updated})"


def _experiment_of(run: RunDir) -> str | None:
    if run.job and run.job.get("experiment"):
        return str(run.job["experiment"])
    if run.config and run.config.get("experiment_name"):
        return str(run.config["experiment_name"])
    found = _experiment_from_overrides(run.overrides)
    if found:
        return found
    # An evaluate.py job: the experiment of the training run it evaluated (model.path=<run dir>,
    # its hf/ export or a checkpoint inside it).
    model = ((run.config or {}).get("model") or {}).get("path") or next(
        (_override_value(o) for o in run.overrides if _override_key(o) == "model.path"), None
    )
    if model:
        for parent in [Path(str(model)), *Path(str(model)).parents][:3]:
            job = _read_json(parent / JOB_FILE)
            if job and job.get("experiment"):
                return str(job["experiment"])
    return None


def _experiment_from_overrides(overrides: Iterable[str]) -> str | None:
    for o in overrides:
        if _override_key(o) == "experiment":
            return _override_value(o)
    return None


def _resolve_variant(v: Variant, default_benchmarks: list[str]) -> None:
    """State, planned benchmarks and results of a variant from its job directories."""
    if not v.runs:
        v.state, v.detail = NOT_STARTED, "expected from multirun.yaml; no job directory yet"
        v.planned = list(v.sweep_benchmarks or default_benchmarks)
        return
    v.experiment = next((e for e in map(_experiment_of, v.runs) if e), None) or v.experiment
    for run in v.runs:
        v.results.update(run.results)
    job = v.job
    if job is not None:
        v.state, v.detail = _job_state(job)
        v.planned = [str(b) for b in job.get("benchmarks") or []]
    else:
        # evaluate.py jobs (one per benchmark=...), or a training run from before job.json.
        asked = [_override_value(o) for r in v.runs for o in r.overrides if _is_benchmark(o)]
        v.planned = list(dict.fromkeys(v.sweep_benchmarks + asked + sorted(v.results)))
        waiting = [b for b in v.planned if b not in v.results]
        if v.planned and not waiting:
            v.state, v.detail = FINISHED, ""
        elif any((r.path / "summary.json").is_file() for r in v.runs):
            v.state, v.detail = NO_JOB_JSON, "no job.json (a run from before santa wrote one)"
        elif v.planned:
            v.state = NO_RESULTS
            v.detail = f"no results.json for {', '.join(waiting)} (evaluate.py still running, or it stopped)"
        else:
            newest = max(r.path.stat().st_mtime for r in v.runs)
            v.state = NO_JOB_JSON
            v.detail = (
                f"directory started {time.strftime('%Y-%m-%d %H:%M', time.localtime(newest))}; "
                "no job.json yet (starting, or it stopped before writing one)"
            )
            v.planned = list(default_benchmarks)
    v.missing = [b for b in v.planned if b not in v.results]
    if v.state == FINISHED and v.missing:
        v.state, v.detail = INCOMPLETE, "finished without results for " + ", ".join(v.missing)


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep directory (or a single run directory); raise NotASweepError when it is neither."""
    path = Path(path).expanduser()
    if not path.exists():
        raise NotASweepError(f"{path} does not exist; pass the directory a multirun wrote (multirun/<date>/<time>)")
    if not path.is_dir():
        raise NotASweepError(
            f"{path} is a file; pass the sweep directory that holds multirun.yaml and the job directories"
        )
    multirun_path = path / "multirun.yaml"
    multirun = _read_yaml(multirun_path) if multirun_path.is_file() else None
    single = multirun is None and (
        (path / JOB_FILE).is_file()
        or (path / "results.json").is_file()
        or ((path / ".hydra").is_dir() and (path / "summary.json").is_file())
    )
    run_paths = [path] if single else discover(path)
    if multirun is None and not run_paths:
        raise NotASweepError(
            f"{path} is not a sweep: no multirun.yaml, no job directories (<n>/.hydra, <n>/job.json) and no "
            "results.json; pass the directory `python train.py -m ...` printed (multirun/<date>/<time>) or a run directory"
        )
    notes: list[str] = []
    if multirun_path.is_file() and multirun is None:
        notes.append("multirun.yaml could not be read: expected jobs unknown")
    runs = [read_run(p) for p in run_paths]
    variants: dict[tuple[str, ...], Variant] = {}
    if isinstance(multirun, dict):
        jobs, why = expected_jobs(multirun)
        if why:
            notes.append(why)
        for overrides in jobs or []:
            key = _variant_key(overrides)
            if key not in variants:
                variants[key] = Variant(
                    key=key, overrides=[o for o in overrides if not _is_benchmark(o)], expected=True
                )
            variants[key].sweep_benchmarks += [_override_value(o) for o in overrides if _is_benchmark(o)]
    for run in runs:
        key = _variant_key(run.overrides)
        if key not in variants:
            variants[key] = Variant(key=key, overrides=[o for o in run.overrides if not _is_benchmark(o)])
            if multirun is not None:
                notes.append(f"{run.path.name}/ is not one of multirun.yaml's jobs (overrides {run.overrides})")
        variants[key].runs.append(run)
    # A job not started yet is expected to run what its siblings run.
    planned: list[str] = []
    for run in runs:
        for b in ((run.job or {}).get("benchmarks") or []) + sorted(run.results):
            if str(b) not in planned:
                planned.append(str(b))
    for v in variants.values():
        v.experiment = _experiment_from_overrides(v.overrides)
        _resolve_variant(v, planned)
    _label(list(variants.values()), single_dir=path if single or len(variants) == 1 else None)
    return Sweep(path=path, variants=list(variants.values()), notes=notes, single=single)


def _label(variants: list[Variant], single_dir: Path | None) -> None:
    """experiment name plus the overrides that tell the jobs apart."""
    per_variant = [{_override_key(o): _override_value(o) for o in v.overrides} for v in variants]
    values: dict[str, set[str]] = {}
    for keys in per_variant:
        for k in {k for d in per_variant for k in d}:
            values.setdefault(k, set()).add(keys.get(k, "\0"))
    varying = {k for k, vals in values.items() if len(vals) > 1 and k != "experiment"}
    for v in variants:
        parts = [v.experiment] if v.experiment else []
        parts += [o.lstrip("+~") for o in v.overrides if _override_key(o) in varying]
        if not parts and v.runs and v.runs[0].job is None:
            model = next((_override_value(o) for o in v.overrides if _override_key(o) == "model.path"), "")
            parts = [Path(model).name] if model else []
        v.label = " ".join(parts) or (single_dir.name if single_dir else (v.run_dir.name if v.run_dir else "run"))
    seen: dict[str, int] = {}
    for v in variants:
        seen[v.label] = seen.get(v.label, 0) + 1
    for v in variants:
        if seen[v.label] > 1 and v.run_dir is not None:
            v.label = f"{v.label} ({v.run_dir.name})"


# --------------------------------------------------------------------------------------------
# Pipeline reports


@dataclass
class DataVariant:
    name: str
    path: Path
    report: dict[str, Any]
    used_by: list[str]


def data_variants(sweep: Sweep) -> tuple[list[DataVariant], list[str]]:
    """Each pipeline report of the sweep once (jobs of one data variant share it)."""
    found: dict[str, DataVariant] = {}
    problems: list[str] = []
    for v in sweep.variants:
        job = v.job or {}
        pipe = job.get("pipeline") or {}
        name = pipe.get("name") or (((v.runs[0].config or {}).get("pipeline") or {}).get("name") if v.runs else None)
        rep = pipe.get("report")
        if not rep:
            continue
        path = Path(rep)
        if not path.is_absolute() and v.run_dir is not None:
            path = v.run_dir / path
        report = _read_json(path)
        if report is None or not report.get("steps"):
            problems.append(f"{v.label}: pipeline report {path} not found or unreadable")
            continue
        ident = str(report.get("key") or path)
        if ident in found:
            if v.label not in found[ident].used_by:
                found[ident].used_by.append(v.label)
            continue
        found[ident] = DataVariant(name=str(name or path.parent.name), path=path, report=report, used_by=[v.label])
    out = list(found.values())
    names = [d.name for d in out]
    for d in out:
        if names.count(d.name) > 1:  # same preset at two scales, say
            d.name = f"{d.name} ({d.report.get('key', d.path.parent.name)})"
    return out, problems


def _lang_entries(step: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """'all' plus each language's counts of a pipeline step, keyed py/java/js (others as named)."""
    out = {"all": step}
    for lang, entry in (step.get("by_lang") or {}).items():
        out[STACK_LANG.get(lang, lang)] = entry
    return out


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 3) if whole else None


def filter_steps(dv: DataVariant, base: DataVariant | None) -> list[dict[str, Any]]:
    """The steps that make this data variant differ from the base data: absent from the base, or
    there with other parameters (near_dedup in its dedup_alt mode)."""
    steps = [s for s in dv.report["steps"] if s.get("kind") != "input"]
    if base is not None and base is not dv:
        base_params = {s["name"]: s.get("params") for s in base.report["steps"]}
        return [s for s in steps if s["name"] not in base_params or s.get("params") != base_params[s["name"]]]
    if base is dv:
        return []
    return [
        s
        for s in steps
        if s.get("plugin", s["name"]) in ("stars", "comments", "fertility")
        or (s.get("plugin", s["name"]) == "near_dedup" and (s.get("params") or {}).get("mode") == "dedup_alt")
    ]


def _kept(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    last = report["steps"][-1]
    return {lang: e.get("kept") or {} for lang, e in _lang_entries(last).items()}


def removed_vs_base(dv: DataVariant, base: DataVariant | None) -> dict[str, dict[str, float | None]]:
    """% of files and bytes this variant's clean data lacks compared with the base data's: what
    the paper's Table 3 measures (volume after filtering vs base)."""
    if base is None or base is dv:
        return {}
    mine, theirs = _kept(dv.report), _kept(base.report)
    out: dict[str, dict[str, float | None]] = {}
    for lang, b in theirs.items():
        m = mine.get(lang, {"files": 0, "bytes": 0})
        out[lang] = {unit: _pct(b.get(unit, 0) - m.get(unit, 0), b.get(unit, 0)) for unit in ("files", "bytes")}
    return out


def _step_label(step: dict[str, Any]) -> str:
    mode = (step.get("params") or {}).get("mode")
    return f"{step['name']} ({mode})" if step["name"] == "near_dedup" and mode else str(step["name"])


# --------------------------------------------------------------------------------------------
# Tables


class Footnotes:
    """Numbered notes shared by every table of the report: one number per distinct text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        return f"[{self.texts.index(text) + 1}]"

    def render(self) -> list[str]:
        return [f"[{i}] {t}" for i, t in enumerate(self.texts, 1)]


@dataclass
class Cell:
    ours: float | None
    paper: PaperValue
    state: str  # ok | skipped | the job's state | missing | not planned
    note: str = ""


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _fmt_paper(p: PaperValue, digits: int = 2) -> str:
    if p.value is None:
        return "n/a"
    return ("≈" if p.approx else "") + f"{p.value:.{digits}f}"


def _cell_for(v: Variant, benchmark: str, metric: str, paper: PaperValue) -> Cell:
    res = v.results.get(benchmark)
    if res is not None:
        if res.get("skipped"):
            return Cell(None, paper, "skipped", f"{v.label} {benchmark}: skipped ({res['skipped']})")
        score = (res.get("scores") or {}).get(metric)
        notes = []
        if res.get("limit"):
            notes.append(
                f"{benchmark}: only the first {res['limit']} problems (limit={res['limit']}); "
                "not comparable with the full benchmark"
            )
        temp = (res.get("generation") or {}).get("temperature")
        want = PAPER_TEMPERATURE.get(metric)
        if want is not None and isinstance(temp, (int, float)) and abs(float(temp) - want) > 1e-9:
            notes.append(f"{metric} from samples at T={float(temp):g} (the paper's {metric}: T={want:g})")
        note = "; ".join(notes)
        if score is None:
            return Cell(None, paper, "not computed", f"{benchmark}: no {metric} in results (fewer samples than k?)")
        return Cell(float(score), paper, "ok", note)
    if v.state == FINISHED or v.state == INCOMPLETE:
        if benchmark in v.planned:
            return Cell(None, paper, "missing", f"{v.label}: the job finished without {benchmark} results")
        return Cell(None, paper, "not planned", f"{v.label}: {benchmark} is not among this job's benchmarks")
    return Cell(None, paper, v.state, f"{v.label}: {v.state}" + (f" — {v.detail}" if v.detail else ""))


@dataclass
class Report:
    sweep: Sweep
    paper: Paper
    rows: list[dict[str, Any]] = field(default_factory=list)  # the CSV
    md: list[str] = field(default_factory=list)
    notes: Footnotes = field(default_factory=Footnotes)
    plots: list[tuple[str, Any]] = field(default_factory=list)  # (file name, plot spec)


def _benchmarks(sweep: Sweep) -> list[str]:
    seen: list[str] = []
    for v in sweep.variants:
        for b in list(v.planned) + sorted(v.results):
            if b not in seen:
                seen.append(b)
    return seen


def _lang_of(benchmark: str, prefix: str) -> str | None:
    return benchmark[len(prefix) :] if benchmark.startswith(prefix) and benchmark[len(prefix) :] in LANGS else None


def _csv_row(
    rep: Report, table: str, variant: str, language: str, metric: str, ours: Any, paper: PaperValue | None, state: str
) -> None:
    rep.rows.append(
        {
            "table": table,
            "variant": variant,
            "language": language,
            "metric": metric,
            "ours": "" if ours is None else ours,
            "paper": "" if paper is None or paper.value is None else paper.value,
            "state": state,
            "paper_source": ""
            if paper is None or paper.value is None
            else paper.source + (" (approx.)" if paper.approx else ""),
        }
    )


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return lines


def _ours_text(rep: Report, cell: Cell, digits: int = 3) -> str:
    if cell.ours is not None:
        return _fmt(cell.ours, digits) + (" " + rep.notes.mark(cell.note) if cell.note else "")
    word = "skipped" if cell.state == "skipped" else "—"
    return f"{word} {rep.notes.mark(cell.note)}" if cell.note else word


def _sources(rep: Report, table: str, variants: list[Variant]) -> list[str]:
    seen: list[str] = []
    for v in variants:
        block = (rep.paper.data.get(table) or {}).get(rep.paper.variant(v.experiment) or "")
        if isinstance(block, dict) and block.get("source"):
            line = f"{v.label}: {block['source']}"
            if line not in seen:
                seen.append(line)
    return (
        [f"Paper column — {'; '.join(seen)}."]
        if seen
        else ["Paper column: n/a (no published number for these variants)."]
    )


def pass_at_k_table(rep: Report, suite: str) -> None:
    prefix, title = SUITES[suite]
    benches = [b for b in _benchmarks(rep.sweep) if _lang_of(b, prefix)]
    if not benches:
        return
    langs = [lang for lang in LANGS if prefix + lang in benches]
    ours_ks = sorted(
        {
            m
            for v in rep.sweep.variants
            for b in benches
            for m in ((v.results.get(b) or {}).get("scores") or {})
            if m.startswith("pass@")
        },
        key=_metric_order,
    )
    ks = ours_ks or rep.paper.metrics(suite)
    rep.md += [f"### {title}: pass@k", ""]
    if not ours_ks:
        rep.md += ["No results yet: the paper's numbers alone.", ""]
    header = ["variant", "language"] + [c for k in ks for c in (k, "paper")]
    rows = []
    plot: dict[str, dict[str, list[tuple[str, float | None, PaperValue]]]] = {k: {} for k in ks}
    for v in rep.sweep.variants:
        for lang in langs:
            bench = prefix + lang
            row = [v.label, LANG_NAME[lang]]
            for k in ks:
                paper = rep.paper.score(suite, v.experiment, lang, k)
                cell = _cell_for(v, bench, k, paper)
                row += [_ours_text(rep, cell), _fmt_paper(paper)]
                _csv_row(rep, suite, v.label, LANG_NAME[lang], k, cell.ours, paper, cell.state)
                plot[k].setdefault(lang, []).append((v.label, cell.ours, paper))
            rows.append(row)
    rep.md += _md_table(header, rows) + [""] + _sources(rep, suite, rep.sweep.variants) + [""]
    for k in ks:
        rep.plots.append((f"{suite}_{k.replace('@', '')}.png", (f"{title} {k}", k, plot[k])))


def fim_table(rep: Report) -> None:
    benches = [b for b in _benchmarks(rep.sweep) if _lang_of(b, FIM_PREFIX)]
    if not benches:
        return
    langs = [lang for lang in LANGS if FIM_PREFIX + lang in benches]
    rep.md += ["## 2. Fill-in-the-middle: single-line exact match", ""]
    header = ["variant"] + [c for lang in langs for c in (LANG_NAME[lang], "paper")]
    rows = []
    plot: dict[str, list[tuple[str, float | None, PaperValue]]] = {}
    for v in rep.sweep.variants:
        row = [v.label]
        for lang in langs:
            paper = rep.paper.score("fim", v.experiment, lang, "exact_match")
            cell = _cell_for(v, FIM_PREFIX + lang, "exact_match", paper)
            row += [_ours_text(rep, cell), _fmt_paper(paper)]
            _csv_row(rep, "fim", v.label, LANG_NAME[lang], "exact_match", cell.ours, paper, cell.state)
            plot.setdefault(lang, []).append((v.label, cell.ours, paper))
        rows.append(row)
    rep.md += _md_table(header, rows) + [""] + _sources(rep, "fim", rep.sweep.variants)
    rep.md += ["The paper reports FIM only for the data ablations (none for mha, no_fim).", ""]
    rep.plots.append(("fim_exact_match.png", ("FIM single-line exact match", "exact match", plot)))


def data_tables(rep: Report) -> None:
    dvs, problems = data_variants(rep.sweep)
    rep.md += ["## 3. Data removed per filter", ""]
    for p in problems:
        rep.md.append(f"- {p}")
    if not dvs and not any(rep.paper.variant(v.experiment) in (*PAPER_FILTERS, "final") for v in rep.sweep.variants):
        rep.md += ([""] if problems else []) + ["No pipeline report in this sweep (no job recorded one yet).", ""]
        return
    base = next((d for d in dvs if rep.paper.variant(d.name.split(" (")[0]) == "base"), None)
    rows = []
    plot: dict[str, list[tuple[str, float | None, PaperValue]]] = {}
    for dv in dvs:
        short = dv.name.split(" (")[0]
        vs_base = removed_vs_base(dv, base)
        steps = filter_steps(dv, base)
        present = _lang_entries(dv.report["steps"][-1])
        langs = ["all"] + [lang for lang in LANGS if lang in present] + sorted(set(present) - {"all", *LANGS})
        if not steps:
            if dv is base:
                total = dv.report.get("totals") or {}
                read, kept = total.get("read") or {}, total.get("kept") or {}
                rows.append(
                    [
                        dv.name,
                        ", ".join(dv.used_by),
                        "(base data)",
                        "all",
                        f"kept {kept.get('files', 0):,} of {read.get('files', 0):,} files",
                        "",
                        "",
                        "n/a",
                    ]
                )
            continue
        for step in steps:
            entries = _lang_entries(step)
            for lang in langs:
                e = entries.get(lang)
                if e is None:
                    continue
                pct = e.get("removed_pct") or {}
                vb = vs_base.get(lang, {})
                paper = rep.paper.removed_pct(short, lang)
                rows.append(
                    [
                        dv.name,
                        ", ".join(dv.used_by),
                        _step_label(step),
                        LANG_NAME.get(lang, lang),
                        _pct_text(pct.get("files")),
                        _pct_text(pct.get("bytes")),
                        _pct_text(vb.get("bytes")) if vs_base else "n/a (no base data in sweep)",
                        _fmt_paper(paper, 1) + (" %" if paper.value is not None else ""),
                    ]
                )
                for unit in ("files", "bytes"):
                    _csv_row(
                        rep,
                        "data_removed",
                        dv.name,
                        LANG_NAME.get(lang, lang),
                        f"{_step_label(step)}:{unit}_pct",
                        pct.get(unit),
                        None,
                        "ok",
                    )
        for lang in langs:
            removed = vs_base.get(lang)
            paper = rep.paper.removed_pct(short, lang)
            if removed is not None:
                _csv_row(
                    rep,
                    "data_removed",
                    dv.name,
                    LANG_NAME.get(lang, lang),
                    "vs_base:files_pct",
                    removed.get("files"),
                    None,
                    "ok",
                )
            if removed is not None or paper.value is not None:
                _csv_row(
                    rep,
                    "data_removed",
                    dv.name,
                    LANG_NAME.get(lang, lang),
                    "vs_base:bytes_pct",
                    removed.get("bytes") if removed else None,
                    paper,
                    "ok" if removed else "no base data",
                )
            if lang != "all":
                plot.setdefault(lang, []).append((dv.name, removed.get("bytes") if removed else None, paper))
    # Data variants of jobs with no pipeline report yet: listed, with why, and the paper's number.
    reported = {label for d in dvs for label in d.used_by}
    for v in rep.sweep.variants:
        name = rep.paper.variant(v.experiment)
        if (
            v.label in reported
            or name not in (*PAPER_FILTERS, "final")
            or any(d.name.split(" (")[0] == name for d in dvs)
        ):
            continue
        why = rep.notes.mark(
            f"{v.label}: {v.state}" + (f" — {v.detail}" if v.detail else "")
            if v.state not in (FINISHED, INCOMPLETE)
            else f"{v.label}: no pipeline report recorded in job.json"
        )
        paper = rep.paper.removed_pct(name, "all")
        rows.append(
            [
                f"{name} (expected)",
                v.label,
                "—",
                "all",
                f"— {why}",
                "",
                "",
                _fmt_paper(paper, 1) + (" %" if paper.value is not None else ""),
            ]
        )
        _csv_row(
            rep,
            "data_removed",
            str(name),
            "all",
            "vs_base:bytes_pct",
            None,
            paper,
            v.state if v.state not in (FINISHED, INCOMPLETE) else "no pipeline report",
        )
        for lang in LANGS:
            plot.setdefault(lang, []).append((f"{name} ({v.state})", None, rep.paper.removed_pct(name, lang)))
    header = [
        "data variant",
        "used by",
        "filter step",
        "language",
        "step: files removed",
        "step: bytes removed",
        "vs base data: bytes",
        "paper (bytes)",
    ]
    rep.md += ([""] if problems else []) + _md_table(header, rows) + [""]
    rep.md += [
        "*step*: the share of what reached the step that it removed (pipeline report, `removed_pct`). "
        "*vs base data*: how much smaller this variant's clean data is than the base data's — what the paper's "
        "Table 3 measures (volume after filtering vs base). santa's presets run each filter on top of the base "
        "pipeline, as the paper did (dedup-alt's near-dedup as a second near_dedup step, `near_dedup_alt`), so "
        "both compare; in a sweep made with near_dedup's own mode set to dedup_alt (in place of The Stack's "
        "near-dedup), only *vs base data* does.",
        "",
        f"Paper column — {(rep.paper.data.get('data_volume_gb') or {}).get('source', 'n/a')}; the final data "
        "(dedup-alt + comments) has no published volume (n/a).",
    ]
    texts = [
        f"{n}: {rep.paper.filter_text(n)}"
        for n in PAPER_FILTERS
        if rep.paper.filter_text(n) and any(d.name.split(" (")[0] == n for d in dvs)
    ]
    if texts:
        rep.md += ["The paper's text (Sec. 5.3): " + "; ".join(texts) + "."]
    rep.md += [""]
    if plot and any(p.value is not None or o is not None for pts in plot.values() for _, o, p in pts):
        rep.plots.append(("data_removed.png", ("% of data (bytes) removed vs the base data", "% removed", plot)))
    every_step_table(rep, dvs)


def _pct_text(x: Any) -> str:
    return "—" if x is None else f"{float(x):.1f} %"


def every_step_table(rep: Report, dvs: list[DataVariant]) -> None:
    if not dvs:
        return
    rep.md += ["### Every pipeline step", ""]
    langs = [lang for lang in LANGS if any(lang in _lang_entries(s) for d in dvs for s in d.report["steps"])]
    header = ["data variant", "step", "read files", "files removed", "bytes removed"] + [
        f"{LANG_NAME[lang]} files removed" for lang in langs
    ]
    rows = []
    for dv in dvs:
        for step in dv.report["steps"]:
            if step.get("kind") == "input":
                continue
            entries = _lang_entries(step)
            pct = step.get("removed_pct") or {}
            rows.append(
                [
                    dv.name,
                    _step_label(step),
                    f"{(step.get('read') or {}).get('files', 0):,}",
                    _pct_text(pct.get("files")),
                    _pct_text(pct.get("bytes")),
                ]
                + [
                    _pct_text((entries.get(lang) or {}).get("removed_pct", {}).get("files")) if lang in entries else "—"
                    for lang in langs
                ]
            )
    rep.md += _md_table(header, rows) + [""]


def training_table(rep: Report) -> None:
    rows = []
    for v in rep.sweep.variants:
        job = v.job or {}
        summary = next((r.summary for r in v.runs if r.summary), None) or {}
        metrics = job.get("train") or summary.get("metrics") or {}
        step = job.get("global_step", summary.get("global_step"))
        max_steps = job.get("max_steps")
        if not v.runs or (not metrics and not job):
            continue
        done = v.state in (FINISHED, INCOMPLETE) or bool(metrics)
        steps = f"{step if done and step is not None else '?'}/{max_steps if max_steps is not None else '?'}"
        row = [v.label, v.state, job.get("scale") or "—", steps]
        for m in ("train/loss", "val/loss", "val/ppl"):
            val = metrics.get(m)
            row.append(_fmt(float(val), 3) if isinstance(val, (int, float)) else "—")
            if isinstance(val, (int, float)):
                _csv_row(rep, "training", v.label, "", m, float(val), None, v.state)
        if step is not None and done:
            _csv_row(rep, "training", v.label, "", "global_step", int(step), None, v.state)
        row.append(f"{summary['seconds']:.0f}" if isinstance(summary.get("seconds"), (int, float)) else "—")
        rows.append(row)
    rep.md += ["## 4. Training", ""]
    if not rows:
        rep.md += ["No job has recorded training yet.", ""]
        return
    rep.md += _md_table(["variant", "state", "scale", "steps", "train/loss", "val/loss", "val/ppl", "seconds"], rows)
    rep.md += [
        "",
        "Losses are the last logged values (job.json `train`, else summary.json). The paper gives no losses.",
        "",
    ]


def other_results_table(rep: Report) -> None:
    known = {SUITES[s][0] + lang for s in SUITES for lang in LANGS} | {FIM_PREFIX + lang for lang in LANGS}
    others = [b for b in _benchmarks(rep.sweep) if b not in known]
    if not others:
        return
    rows = []
    for bench in others:
        for v in rep.sweep.variants:
            res = v.results.get(bench)
            metrics = sorted(((res or {}).get("scores") or {}), key=_metric_order) or ["—"]
            for metric in metrics:
                cell = _cell_for(v, bench, metric, NO_PAPER)
                # results.json carries the final model's published numbers; they fit `final` only.
                paper = NO_PAPER
                if rep.paper.variant(v.experiment) == "final" and res and metric in (res.get("paper") or {}):
                    paper = PaperValue(float(res["paper"][metric]), str(res.get("paper_source") or ""))
                rows.append([bench, v.label, metric, _ours_text(rep, cell), _fmt_paper(paper)])
                if metric != "—":
                    _csv_row(
                        rep,
                        bench,
                        v.label,
                        LANG_NAME.get(str((res or {}).get("language")), ""),
                        metric,
                        cell.ours,
                        paper,
                        cell.state,
                    )
    rep.md += ["## Other results", ""] + _md_table(["benchmark", "variant", "metric", "ours", "paper"], rows) + [""]


def jobs_table(rep: Report) -> None:
    rows = []
    for v in rep.sweep.variants:
        where = (
            str(v.run_dir.relative_to(rep.sweep.path))
            if v.run_dir and v.run_dir != rep.sweep.path
            else ("." if v.run_dir else "—")
        )
        results = f"{sum(b in v.results for b in v.planned)}/{len(v.planned)}" if v.planned else str(len(v.results))
        rows.append([v.label, rep.paper.name(v.experiment) or "—", where, v.state, v.detail or "", results])
        _csv_row(rep, "jobs", v.label, "", "job", None, None, v.state)
    rep.md += (
        ["## Jobs", ""]
        + _md_table(["variant", "paper's variant", "job dir", "state", "detail", "results"], rows)
        + [""]
    )


def banner(sweep: Sweep) -> str:
    n, done = len(sweep.variants), sweep.finished
    if not sweep.partial:
        return f"**complete: {done} of {n} job{'s' if n != 1 else ''} finished.**"
    groups: dict[str, list[str]] = {}
    for v in sweep.variants:
        if not v.ok:
            groups.setdefault(v.state, []).append(v.label)
    order = [RUNNING, INTERRUPTED, CRASHED, FAILED, INCOMPLETE, NO_JOB_JSON, NO_RESULTS, NOT_STARTED]
    parts = [
        f"{len(groups[s])} {s} ({', '.join(groups[s])})"
        for s in order + sorted(set(groups) - set(order))
        if s in groups
    ]
    return (
        f"**partial: {done} of {n} jobs finished**; "
        + "; ".join(parts)
        + ". Cells marked — lack a result; the notes say why."
    )


def build(sweep: Sweep, paper: Paper | None = None) -> Report:
    rep = Report(sweep=sweep, paper=paper or Paper(load_paper()))
    scales = sorted({str((v.job or {}).get("scale")) for v in sweep.variants if (v.job or {}).get("scale")})
    rep.md += [f"# Sweep report: {sweep.path}", "", banner(sweep), ""]
    meta = [f"Generated {time.strftime('%Y-%m-%d %H:%M:%S%z')} by `santa report`."]
    if scales:
        meta.append(f"Scale: {', '.join(scales)}.")
        if "paper" not in scales:
            meta.append(
                "The paper's models are 1.1B parameters trained on 118B tokens: at a small scale compare the "
                "direction of each ablation against `fim` (the paper's baseline), not the values."
            )
    meta.append(
        f"Paper numbers: santa/sweep/paper_ablations.yaml ({rep.paper.data.get('paper', 'arXiv 2301.03988')}); "
        "n/a = not published, ≈ = read off a plot."
    )
    rep.md += [" ".join(meta), ""]
    rep.md += [f"- {n}" for n in sweep.notes] + ([""] if sweep.notes else [])
    jobs_table(rep)
    suites = [s for s in SUITES if any(_lang_of(b, SUITES[s][0]) for b in _benchmarks(sweep))]
    if suites:
        rep.md += ["## 1. Text-to-code: pass@k", ""]
        for s in suites:
            pass_at_k_table(rep, s)
    not_run = [SUITES[s][1] for s in SUITES if s not in suites]
    fim_table(rep)
    if not_run or not any(_lang_of(b, FIM_PREFIX) for b in _benchmarks(sweep)):
        missing = not_run + ([] if any(_lang_of(b, FIM_PREFIX) for b in _benchmarks(sweep)) else ["FIM exact match"])
        rep.md += [
            f"Not evaluated in this sweep: {', '.join(missing)} (the paper's numbers are in paper_ablations.yaml).",
            "",
        ]
    data_tables(rep)
    training_table(rep)
    other_results_table(rep)
    if rep.notes.texts:
        rep.md += ["## Notes", ""] + [f"{line}  " for line in rep.notes.render()] + [""]
    return rep


# --------------------------------------------------------------------------------------------
# Output


def write_markdown(rep: Report, out: Path) -> Path:
    path = out / "report.md"
    _atomic_write(path, "\n".join(rep.md).rstrip() + "\n")
    return path


def write_csv(rep: Report, out: Path) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rep.rows)
    path = out / "report.csv"
    _atomic_write(path, buf.getvalue())
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_plots(rep: Report, out: Path) -> list[Path]:
    """Grouped bars, ours beside the paper's, one panel per language."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    written = []
    status = (
        ""
        if not rep.sweep.partial
        else f" — partial sweep ({rep.sweep.finished} of {len(rep.sweep.variants)} jobs finished)"
    )
    for name, (title, ylabel, per_lang) in rep.plots:
        langs = [lang for lang in LANGS if lang in per_lang] + [lang for lang in per_lang if lang not in LANGS]
        if not langs:
            continue
        n_groups = max(len(per_lang[lang]) for lang in langs)
        fig = Figure(figsize=(max(6.0, 1.0 + 0.9 * n_groups) * len(langs) / 1.6, 4.2))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(langs), squeeze=False)[0]
        for ax, lang in zip(axes, langs):
            points = per_lang[lang]
            xs = list(range(len(points)))
            ours = [o if o is not None else 0.0 for _, o, _ in points]
            paper = [p.value if p.value is not None else 0.0 for _, _, p in points]
            w = 0.38
            ax.bar([x - w / 2 for x in xs], ours, w, label="ours", color="#2b7bba")
            bars = ax.bar([x + w / 2 for x in xs], paper, w, label="paper", color="#f29e4c")
            for x, (_, o, p), bar in zip(xs, points, bars):
                if o is None:
                    ax.text(x - w / 2, 0, "—", ha="center", va="bottom", fontsize=9)
                if p.value is None:
                    ax.text(x + w / 2, 0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
                elif p.approx:
                    bar.set_hatch("//")
            ax.set_xticks(xs)
            ax.set_xticklabels([label for label, _, _ in points], rotation=45, ha="right", fontsize=8)
            ax.set_title(LANG_NAME.get(lang, lang))
            ax.set_ylabel(ylabel)
        axes[0].legend(fontsize=8)
        fig.suptitle(title + status, fontsize=10)
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


def parse_formats(values: Sequence[str] | None) -> list[str]:
    chosen: list[str] = []
    for value in values or ["all"]:
        for f in str(value).split(","):
            f = f.strip().lower()
            if f in ("", "all"):
                chosen += [x for x in FORMATS if x not in chosen] if f == "all" else []
            elif f in ("markdown",):
                chosen.append("md")
            elif f in FORMATS:
                chosen.append(f)
            else:
                raise SantaError(f"--format {f!r}: choose from {', '.join(FORMATS)} or all (comma-separated)")
    return list(dict.fromkeys(chosen))


def report(sweep_dir: str | Path, out: str | Path | None = None, formats: Sequence[str] = FORMATS) -> dict[str, Any]:
    """Write the report of ``sweep_dir``; returns the sweep, the report and the files written."""
    sweep = load_sweep(sweep_dir)
    rep = build(sweep)
    out_dir = Path(out) if out is not None else sweep.path / REPORT_DIR
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SantaError(
            f"cannot write the report to {out_dir} ({exc.strerror}); choose another place with --out"
        ) from exc
    files: list[Path] = []
    if "md" in formats:
        files.append(write_markdown(rep, out_dir))
    if "csv" in formats:
        files.append(write_csv(rep, out_dir))
    if "png" in formats:
        files += write_plots(rep, out_dir)
    return {"sweep": sweep, "report": rep, "files": files, "out": out_dir}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Turn a sweep's outputs (python train.py -m experiment=...) into the paper's tables: report.md, "
        "report.csv and PNG plots, beside the paper's numbers; jobs not finished are marked."
    )
    if not parser.add_help:
        # santa's CLI builds the chosen subcommand's parser without -h and leaves it to us.
        parser.add_argument("-h", "--help", action="help", help="show this help message and exit")
    parser.add_argument(
        "sweep",
        help="the multirun directory (with multirun.yaml and <n>/ job directories), "
        "an evaluate.py multirun, or one run directory",
    )
    parser.add_argument("--out", "-o", help="where to write (default: <sweep>/report/)")
    parser.add_argument(
        "--format",
        "-f",
        action="append",
        metavar="FORMATS",
        help="md, csv, png or all (default), comma-separated or repeated",
    )


def run(args: argparse.Namespace) -> int:
    formats = parse_formats(args.format)
    result = report(args.sweep, args.out, formats)
    sweep: Sweep = result["sweep"]
    print(banner(sweep).replace("**", ""))
    for path in result["files"]:
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m santa.sweep.paper_report")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except SantaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
