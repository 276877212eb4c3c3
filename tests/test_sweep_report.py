"""`santa report`: synthetic sweep directories in the layout train.py -m writes (multirun.yaml,
<n>/.hydra, job.json, eval/<benchmark>/results.json, pipeline report.json) turned into report.md,
report.csv and PNG plots; partial sweeps marked, never dropped. No training here."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from santa.cli import main as santa_main
from santa.errors import SantaError
from santa.eval import tables as eval_report
from santa.pipeline.engine import FORMAT as PIPELINE_FORMAT
from santa.pipeline.report import check_accounting
from santa.sweep import paper_report as sweep_report

ROOT = Path(__file__).resolve().parents[1]
PAPER_ORDER = ["mha", "no_fim", "fim", "stars", "fertility", "comments", "dedup_alt", "final"]
TEXT2CODE = [f"multiple_humaneval_{lang}" for lang in ("py", "js", "java")]
FIM = [f"fim_{lang}" for lang in ("py", "js", "java")]
BENCHMARKS = TEXT2CODE + FIM
BASE_STEPS = ["pii", "basic", "exact_dedup", "near_dedup", "decontaminate"]


# ------------------------------------------------------------------------------------------------
# Builders of the sweep layout


def write_results(run_dir: Path, benchmark: str, scores: dict[str, float], **extra: Any) -> Path:
    language = benchmark.rsplit("_", 1)[1]
    results = {
        "schema": "santa.eval.results/1",
        "benchmark": benchmark,
        "language": language,
        "scoring": "exact_match" if benchmark.startswith("fim_") else "execution",
        "dataset": {"name": "MultiPL-E", "version": "8b88bd5", "files": {}},
        "n_problems": 4,
        "limit": None,
        "scores": scores,
        "counts": {},
        "skipped": None,
        "model": {"path": str(run_dir)},
        "generation": {"temperature": 0.8, "top_p": 0.95, "n_samples": 10},
        "ks": [1, 10],
        "paper": {},
        "paper_source": "",
        **extra,
    }
    out = eval_report.write(run_dir, results, [{"task_id": "t0", "sample": 0, "completion": "", "passed": False}])
    assert out.name == "results.json"
    return out


def pipeline_report(
    path: Path,
    name: str,
    steps: list[tuple[str, dict[str, Any], dict[str, float]]],
    langs: dict[str, tuple[int, int]] | None = None,
) -> Path:
    """A report.json in the pipeline's format: each step removes the given fraction (files and
    bytes) of what reaches it, per language (The Stack's language names)."""
    langs = langs or {"Python": (1000, 10_000_000), "Java": (2000, 30_000_000), "JavaScript": (1500, 20_000_000)}
    current = dict(langs)
    out_steps = []
    for step_name, params, removed in [("input", {"max_file_bytes": 1_000_000}, {})] + steps:
        by_lang = {}
        for lang, (files, nbytes) in sorted(current.items()):
            frac = removed.get(lang, removed.get("all", 0.0))
            xf, xb = int(round(files * frac)), int(round(nbytes * frac))
            by_lang[lang] = {
                "read": {"files": files, "bytes": nbytes},
                "kept": {"files": files - xf, "bytes": nbytes - xb},
                "rejected": {"files": xf, "bytes": xb},
                "removed_pct": {"files": round(100 * xf / files, 3), "bytes": round(100 * xb / nbytes, 3)},
            }
            current[lang] = (files - xf, nbytes - xb)
        total = {
            k: {u: sum(e[k][u] for e in by_lang.values()) for u in ("files", "bytes")}
            for k in ("read", "kept", "rejected")
        }
        out_steps.append(
            {
                "name": step_name,
                "kind": "input" if step_name == "input" else "record",
                "params": params,
                **total,
                "removed_pct": {u: round(100 * total["rejected"][u] / total["read"][u], 3) for u in ("files", "bytes")},
                "by_lang": by_lang,
                "notes": {},
                "stat": {},
            }
        )
    check_accounting(out_steps)  # the real report's invariants hold for this one too
    first, last = out_steps[0], out_steps[-1]
    report = {
        "format": PIPELINE_FORMAT,
        "key": f"key-{name}",
        "engine": "local",
        "created": "2026-01-01T00:00:00+0000",
        "seconds": 1.0,
        "resumed_units": 0,
        "steps": out_steps,
        "totals": {
            "read": first["read"],
            "kept": last["kept"],
            "rejected": {u: first["read"][u] - last["kept"][u] for u in ("files", "bytes")},
        },
        "input_errors": {"count": 0, "examples": []},
        "inputs": [],
        "outputs": {},
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / "report.json").write_text(json.dumps(report))
    return path / "report.json"


def pipelines(cache: Path) -> dict[str, Path]:
    stack = {"mode": "stack", "threshold": 0.85}
    base = [
        ("pii", {}, {}),
        ("basic", {}, {"all": 0.01}),
        ("exact_dedup", {}, {}),
        ("near_dedup", stack, {"all": 0.1}),
        ("decontaminate", {}, {}),
    ]
    with_step = lambda step, at=4: base[:at] + [step] + base[at:]  # noqa: E731
    return {
        "base": pipeline_report(cache / "base", "base", base),
        "stars": pipeline_report(
            cache / "stars",
            "stars",
            with_step(("stars", {"min_stars": 5}, {"Python": 0.6, "Java": 0.5, "JavaScript": 0.7})),
        ),
        "fertility": pipeline_report(cache / "fertility", "fertility", with_step(("fertility", {}, {"all": 0.05}))),
        "comments": pipeline_report(cache / "comments", "comments", with_step(("comments", {}, {"all": 0.2}))),
        "dedup_alt": pipeline_report(
            cache / "dedup_alt",
            "dedup_alt",
            base[:3] + [("near_dedup", {"mode": "dedup_alt", "threshold": 0.7}, {"all": 0.28})] + base[4:],
        ),
    }


DATA = {
    "mha": "base",
    "no_fim": "base",
    "fim": "base",
    "stars": "stars",
    "fertility": "fertility",
    "comments": "comments",
    "dedup_alt": "dedup_alt",
    "final": "final",
}


def write_multirun(sweep: Path, task: list[str]) -> None:
    sweep.mkdir(parents=True, exist_ok=True)
    cfg = {
        "experiment_name": None,
        "hydra": {
            "sweeper": {
                "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                "max_batch_size": None,
                "params": None,
            },
            "overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": task},
        },
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(cfg))


def make_job(
    sweep: Path,
    n: int,
    experiment: str,
    state: str,
    *,
    pid: int | None = None,
    error: str | None = None,
    scores: dict[str, dict[str, float]] | None = None,
    reports: dict[str, Path] | None = None,
    extra_overrides: list[str] | None = None,
    benchmarks: list[str] = BENCHMARKS,
) -> Path:
    run = sweep / str(n)
    (run / ".hydra").mkdir(parents=True)
    overrides = [f"experiment={experiment}"] + (extra_overrides or [])
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"experiment_name": experiment, "pipeline": {"name": DATA[experiment]}})
    )
    evaluation = {}
    for bench, sc in (scores or {}).items():
        write_results(run / "eval" / bench, bench, sc)
        evaluation[bench] = f"eval/{bench}/results.json"
    report = (reports or {}).get(DATA[experiment])
    job = {
        "schema": "santa-job/1",
        "experiment": experiment,
        "state": state,
        "error": error,
        "scale": "cpu",
        "pipeline": {"name": DATA[experiment], "report": str(report) if report else None},
        "benchmarks": benchmarks,
        "evaluation": evaluation,
        "global_step": 200 if state in ("evaluating", "finished") else 0,
        "max_steps": 200,
        "train": {"train/loss": 2.5, "val/loss": 2.75, "val/ppl": 15.6} if state in ("evaluating", "finished") else {},
        "updated": "2026-01-01T00:00:00+0000",
        "pid": pid if pid is not None else os.getpid(),
    }
    (run / "job.json").write_text(json.dumps(job))
    return run


def all_scores(base: float) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for i, bench in enumerate(TEXT2CODE):
        out[bench] = {"pass@1": base + 0.01 * i, "pass@10": base + 0.1 + 0.01 * i}
    for i, bench in enumerate(FIM):
        out[bench] = {"exact_match": base + 0.2 + 0.01 * i}
    return out


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def partial_sweep(tmp_path: Path) -> Path:
    """The paper's 8-job sweep caught midway: 2 finished, 1 running, 1 failed, 1 crashed, 1
    finished without one result, 2 not started."""
    sweep = tmp_path / "multirun" / "2026-01-01" / "12-00-00"
    write_multirun(sweep, ["experiment=" + ",".join(PAPER_ORDER)])
    reports = pipelines(tmp_path / "cache" / "pipeline")
    make_job(sweep, 0, "mha", "finished", scores=all_scores(0.30), reports=reports)
    make_job(sweep, 1, "no_fim", "training", pid=os.getpid(), reports=reports)  # this process: alive
    make_job(sweep, 2, "fim", "finished", scores=all_scores(0.20), reports=reports)
    make_job(sweep, 3, "stars", "failed", error="RuntimeError: CUDA out of memory", reports=reports)
    make_job(
        sweep,
        4,
        "fertility",
        "evaluating",
        pid=dead_pid(),
        reports=reports,
        scores={"multiple_humaneval_py": {"pass@1": 0.05, "pass@10": 0.15}},
    )
    comments = all_scores(0.25)
    del comments["fim_java"]
    make_job(sweep, 5, "comments", "finished", scores=comments, reports=reports)
    return sweep


def strip_notes(md: str) -> str:
    """The report without its footnote markers ("0.200 [3]" -> "0.200")."""
    return re.sub(r" \[\d+\]", "", md)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def row(rows: list[dict[str, str]], **want: str) -> dict[str, str]:
    hits = [r for r in rows if all(r[k] == v for k, v in want.items())]
    assert len(hits) == 1, (want, hits)
    return hits[0]


# ------------------------------------------------------------------------------------------------
# The paper's numbers


def test_paper_numbers_name_their_source_and_cover_every_variant() -> None:
    data = sweep_report.load_paper()
    experiments = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    assert sorted(data["variants"]) == experiments == sorted(PAPER_ORDER)
    for table, metrics in (
        ("humaneval", {"pass@1", "pass@10", "pass@100"}),
        ("mbpp", {"pass@1", "pass@10", "pass@100"}),
        ("fim", {"exact_match"}),
    ):
        for variant, block in data[table].items():
            assert variant in experiments
            assert "arXiv 2301.03988" in block["source"] or "model card" in block["source"]
            for lang in ("py", "java", "js"):
                assert set(block[lang]) == metrics
                assert all(0 < v < 1 for v in block[lang].values())
    # FIM is published for the data ablations only.
    assert "mha" not in data["fim"] and "no_fim" not in data["fim"]
    paper = sweep_report.Paper(data)
    assert paper.score("humaneval", "fim", "py", "pass@100").value == 0.36  # Table 8 / Table 10
    assert paper.score("mbpp", "mha", "js", "pass@100").value == 0.67  # Table 11
    assert paper.score("fim", "dedup-alt", "java", "exact_match").value == 0.66  # Table 6, alias
    assert paper.score("fim", "no_fim", "py", "exact_match").value is None
    # Table 3 volumes: % removed = 1 - variant / base.
    assert paper.removed_pct("stars", "py").value == pytest.approx(64.8, abs=0.05)
    assert paper.removed_pct("comments", "all").value == pytest.approx(19.6, abs=0.05)
    assert paper.removed_pct("dedup_alt", "java").value == pytest.approx(19.6, abs=0.05)
    assert paper.removed_pct("fertility", "py").value == pytest.approx(4.1, abs=0.05)
    assert paper.removed_pct("final", "py").value is None  # not published


def test_approximate_paper_numbers_are_marked() -> None:
    paper = sweep_report.Paper(
        {"humaneval": {"fim": {"source": "Figure 4", "py": {"pass@1": {"value": 0.1, "approx": True}}}}}
    )
    value = paper.score("humaneval", "fim", "py", "pass@1")
    assert value.approx and value.value == 0.1
    assert sweep_report._fmt_paper(value) == "≈0.10"


# ------------------------------------------------------------------------------------------------
# A partial sweep


def test_partial_sweep_lists_every_variant_with_its_state(partial_sweep: Path) -> None:
    sweep = sweep_report.load_sweep(partial_sweep)
    states = {v.label: v.state for v in sweep.variants}
    assert [v.label for v in sweep.variants] == PAPER_ORDER
    assert states == {
        "mha": "finished",
        "no_fim": "running",
        "fim": "finished",
        "stars": "failed",
        "fertility": "crashed",
        "comments": "incomplete",
        "dedup_alt": "not started",
        "final": "not started",
    }
    assert sweep.partial and sweep.finished == 2
    # A job not started is expected to run what the others run.
    assert next(v for v in sweep.variants if v.label == "final").planned == BENCHMARKS


def test_partial_sweep_report_markdown(partial_sweep: Path) -> None:
    result = sweep_report.report(partial_sweep)
    out = partial_sweep / "report"
    assert result["out"] == out
    md = (out / "report.md").read_text()
    head = md.split("## Jobs")[0]
    assert "partial: 2 of 8 jobs finished" in head
    for part in (
        "1 running (no_fim)",
        "1 crashed (fertility)",
        "1 failed (stars)",
        "1 incomplete (comments)",
        "2 not started (dedup_alt, final)",
    ):
        assert part in head
    jobs = md.split("## Jobs")[1].split("## 1.")[0]
    assert "CUDA out of memory" in jobs
    assert f"pid {os.getpid()}" in jobs
    assert "finished without results for fim_java" in jobs
    for name in PAPER_ORDER:
        assert f"| {name} |" in jobs
    # Our pass@1 beside the paper's (fim = the paper's Baseline: Table 8 / Table 10).
    humaneval = md.split("### MultiPL-E HumanEval: pass@k")[1].split("## 2.")[0]
    assert "| fim | Python | 0.200 | 0.12 | 0.300 | 0.21 |" in strip_notes(humaneval)
    assert "| mha | Java | 0.320 | 0.12 | 0.420 | 0.21 |" in strip_notes(humaneval)
    # A not-started job's cells: "—" with a note that says why; the paper's number still there.
    final_py = next(line for line in humaneval.splitlines() if line.startswith("| final | Python |"))
    assert "— [" in final_py and "0.18" in final_py
    notes = md.split("## Notes")[1]
    assert "final: not started" in notes
    assert "no_fim: running" in notes
    assert "fertility: crashed" in notes
    assert "stars: failed — RuntimeError: CUDA out of memory" in notes
    assert "comments: the job finished without fim_java results" in notes
    # The crashed job's one finished result still shows.
    assert "| fertility | Python | 0.050 |" in strip_notes(humaneval)
    # pass@1 from T=0.8 samples is flagged: the paper's pass@1 used T=0.2.
    assert "pass@1 from samples at T=0.8 (the paper's pass@1: T=0.2)" in notes
    fim = md.split("## 2. Fill-in-the-middle")[1].split("## 3.")[0]
    assert "| fim | 0.400 | 0.42 | 0.420 | 0.64 | 0.410 | 0.61 |" in fim
    assert "| mha | 0.500 | n/a |" in fim  # the paper has no FIM number for mha
    assert "Table 6" in fim
    # Not evaluated here: MBPP (the cpu scale runs HumanEval only).
    assert "Not evaluated in this sweep: MultiPL-E MBPP" in md
    assert "Scale: cpu." in md


def test_partial_sweep_report_csv(partial_sweep: Path) -> None:
    sweep_report.report(partial_sweep)
    rows = read_csv(partial_sweep / "report" / "report.csv")
    assert list(rows[0]) == ["table", "variant", "language", "metric", "ours", "paper", "state", "paper_source"]
    r = row(rows, table="humaneval", variant="fim", language="Python", metric="pass@10")
    assert float(r["ours"]) == pytest.approx(0.30) and float(r["paper"]) == 0.21 and r["state"] == "ok"
    assert "Table 8" in r["paper_source"]
    r = row(rows, table="humaneval", variant="final", language="Java", metric="pass@1")
    assert r["ours"] == "" and float(r["paper"]) == 0.15 and r["state"] == "not started"
    assert row(rows, table="humaneval", variant="no_fim", language="Python", metric="pass@1")["state"] == "running"
    assert row(rows, table="fim", variant="stars", language="JavaScript", metric="exact_match")["state"] == "failed"
    assert row(rows, table="fim", variant="fertility", language="Python", metric="exact_match")["state"] == "crashed"
    assert row(rows, table="fim", variant="comments", language="Java", metric="exact_match")["state"] == "missing"
    jobs = {r["variant"]: r["state"] for r in rows if r["table"] == "jobs"}
    assert jobs == {
        "mha": "finished",
        "no_fim": "running",
        "fim": "finished",
        "stars": "failed",
        "fertility": "crashed",
        "comments": "incomplete",
        "dedup_alt": "not started",
        "final": "not started",
    }
    training = row(rows, table="training", variant="mha", metric="val/loss")
    assert float(training["ours"]) == 2.75


def test_data_removed_each_data_variant_once_beside_table_3(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_multirun(sweep, ["experiment=" + ",".join(PAPER_ORDER)])
    reports = pipelines(tmp_path / "cache" / "pipeline")
    for n, exp in enumerate(PAPER_ORDER[:-1]):
        make_job(sweep, n, exp, "finished", scores=all_scores(0.2), reports=reports)
    sweep_report.report(sweep, formats=["md", "csv"])
    md = (sweep / "report" / "report.md").read_text()
    data = md.split("## 3. Data removed per filter")[1].split("### Every pipeline step")[0]
    # The base data is shared by mha, no_fim and fim: one row.
    assert data.count("| base |") == 1 and "| base | mha, no_fim, fim |" in data
    # stars removes 60 % of Python files and bytes at its step; the paper removed 64.8 % (Table 3).
    assert "| stars | stars | stars | Python | 60.0 % | 60.0 % | 60.0 % | 64.8 % |" in data
    # dedup_alt: the stronger near-dedup in place of The Stack's (28 % at its step), 20 % smaller
    # than the base data (1 - 0.72 / 0.9) — the number Table 3 compares with.
    assert "| dedup_alt | dedup_alt | near_dedup (dedup_alt) | Python | 28.0 % | 28.0 % | 20.0 % | 18.0 % |" in data
    assert "| comments | comments | comments | JavaScript | 20.0 % | 20.0 % | 20.0 % | 30.5 % |" in data
    assert "| fertility | fertility | fertility | all | 5.0 % |" in data
    # Rows run all, Python, Java, JavaScript.
    stars = [line.split(" | ")[3] for line in data.splitlines() if line.startswith("| stars |")]
    assert stars == ["all", "Python", "Java", "JavaScript"]
    # final has no job yet: listed, marked, its paper number n/a (not published).
    final = next(line for line in data.splitlines() if line.startswith("| final (expected) | final |"))
    assert "— [" in final and final.endswith("n/a |")
    rows = read_csv(sweep / "report" / "report.csv")
    r = row(rows, table="data_removed", variant="stars", language="Java", metric="vs_base:bytes_pct")
    assert float(r["ours"]) == pytest.approx(50.0) and float(r["paper"]) == pytest.approx(67.5, abs=0.05)
    assert "Table 3" in r["paper_source"]
    r = row(rows, table="data_removed", variant="stars", language="Python", metric="stars:files_pct")
    assert float(r["ours"]) == pytest.approx(60.0, abs=0.1)
    assert (
        row(rows, table="data_removed", variant="final", language="all", metric="vs_base:bytes_pct")["state"]
        == "not started"
    )
    steps = md.split("### Every pipeline step")[1].split("## 4.")[0]
    assert "| base | near_dedup (stack) | " in steps and "| dedup_alt | near_dedup (dedup_alt) |" in steps
    assert steps.count("| base | pii |") == 1


def test_plots_are_pngs(partial_sweep: Path) -> None:
    result = sweep_report.report(partial_sweep)
    pngs = sorted(p.name for p in result["files"] if p.suffix == ".png")
    assert pngs == ["data_removed.png", "fim_exact_match.png", "humaneval_pass1.png", "humaneval_pass10.png"]
    for name in pngs:
        data = (partial_sweep / "report" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
        import matplotlib.image

        assert matplotlib.image.imread(partial_sweep / "report" / name).ndim == 3


def test_complete_sweep_with_a_second_swept_parameter(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_multirun(sweep, ["experiment=fim,final", "seed=1,2", "trainer.max_steps=10"])
    n = 0
    for exp in ("fim", "final"):
        for seed in (1, 2):
            make_job(
                sweep,
                n,
                exp,
                "finished",
                scores=all_scores(0.1 * seed),
                benchmarks=BENCHMARKS,
                extra_overrides=[f"seed={seed}", "trainer.max_steps=10"],
            )
            n += 1
    rep = sweep_report.report(sweep, out=tmp_path / "out", formats=["md", "csv"])
    labels = [v.label for v in rep["sweep"].variants]
    assert labels == ["fim seed=1", "fim seed=2", "final seed=1", "final seed=2"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "complete: 4 of 4 jobs finished" in md and "partial" not in md.split("## Jobs")[0]
    assert "| final seed=2 | Python | 0.200 | 0.18 |" in strip_notes(md)  # final: the model card's pass@1
    assert not list((tmp_path / "out").glob("*.png"))
    assert not (sweep / "report").exists()


def test_a_job_dir_without_job_json_is_partial(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_multirun(sweep, ["experiment=fim,mha"])
    make_job(sweep, 0, "fim", "finished", scores=all_scores(0.2))
    (sweep / "1" / ".hydra").mkdir(parents=True)
    (sweep / "1" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["experiment=mha"]))
    sw = sweep_report.load_sweep(sweep)
    assert [(v.label, v.state) for v in sw.variants] == [("fim", "finished"), ("mha", "no job.json")]
    md = sweep_report.build(sw).md
    assert "partial: 1 of 2 jobs finished" in "\n".join(md)


def test_evaluate_multirun_and_single_run_dir(tmp_path: Path) -> None:
    # python evaluate.py -m benchmark=multiple_humaneval_py,fim_py model.path=<a final run>/hf: the
    # experiment comes from the evaluated run's job.json, so the paper's numbers for `final` apply.
    trained = make_job(tmp_path / "runs", 7, "final", "finished")
    model = f"model.path={trained / 'hf'}"
    sweep = tmp_path / "eval-sweep"
    write_multirun(sweep, ["benchmark=multiple_humaneval_py,fim_py", model])
    for n, bench in enumerate(["multiple_humaneval_py", "fim_py"]):
        run = sweep / str(n)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"benchmark={bench}", model]))
        write_results(run, bench, {"pass@1": 0.11} if "humaneval" in bench else {"exact_match": 0.33})
    sw = sweep_report.load_sweep(sweep)
    assert [(v.label, v.state) for v in sw.variants] == [("final", "finished")]
    result = sweep_report.report(sweep, formats=["md"])
    md = result["files"][0].read_text()
    assert "complete: 1 of 1 job finished" in md and "| final | Python | 0.110 | 0.18 |" in strip_notes(md)
    # The same sweep caught midway: one result in, one job started without results, one not started.
    sweep = tmp_path / "eval-sweep-2"
    write_multirun(sweep, ["benchmark=multiple_humaneval_py,fim_py,multiple_humaneval_js", model])
    for n, bench in enumerate(["multiple_humaneval_py", "fim_py"]):
        run = sweep / str(n)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"benchmark={bench}", model]))
    write_results(sweep / "0", "multiple_humaneval_py", {"pass@1": 0.11})
    sw = sweep_report.load_sweep(sweep)
    [v] = sw.variants
    assert (v.label, v.state) == ("final", "no results yet") and sw.partial
    assert v.detail.startswith("no results.json for fim_py, multiple_humaneval_js")
    md = strip_notes("\n".join(sweep_report.build(sw).md))
    assert "partial: 0 of 1 jobs finished" in md
    assert "| final | Python | 0.110 | 0.18 |" in md and "| final | JavaScript | — | 0.16 |" in md
    # One train.py run directory on its own.
    single = make_job(tmp_path / "runs", 0, "fim", "finished", scores=all_scores(0.2))
    sw = sweep_report.load_sweep(single)
    assert sw.single and [(v.label, v.state) for v in sw.variants] == [("fim", "finished")]


@pytest.mark.parametrize("kind", ["empty", "missing", "file", "unrelated"])
def test_not_a_sweep_is_one_clear_error(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "x"
    if kind == "empty":
        target.mkdir()
    elif kind == "file":
        target.write_text("hello")
    elif kind == "unrelated":
        (target / "src" / "pkg").mkdir(parents=True)
        (target / "README.md").write_text("hi")
    with pytest.raises(sweep_report.NotASweepError) as err:
        sweep_report.load_sweep(target)
    assert isinstance(err.value, SantaError)
    assert santa_main(["report", str(target)]) == 2
    stderr = capsys.readouterr().err.strip()
    assert stderr.startswith("error:") and len(stderr.splitlines()) == 1 and str(target) in stderr
    assert "Traceback" not in stderr


def test_cli_report_writes_the_files(partial_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert santa_main(["report", str(partial_sweep), "--format", "md,csv"]) == 0
    out = capsys.readouterr().out
    assert "partial: 2 of 8 jobs finished" in out
    assert (partial_sweep / "report" / "report.md").is_file() and (partial_sweep / "report" / "report.csv").is_file()
    assert not list((partial_sweep / "report").glob("*.png"))
    assert santa_main(["report", str(partial_sweep), "--format", "pdf"]) == 2
