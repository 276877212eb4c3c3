"""The paper's ablation sweep: the eight experiment configs, the two scales, a Hydra multirun of tiny
variants end to end (data shared, train -> evaluate, W&B runs kept apart), and DDP inside a
multirun (one process group per job)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
from conftest import CONF, TINY, compose_train, run_train_py

from santa.filters.stars import Stars

# variant -> (attention, objective, pipeline preset, its steps, dedup-alt on top of the base, steps factor)
BASE_STEPS = ["pii", "basic", "exact_dedup", "near_dedup", "decontaminate"]
DEDUP_ALT = ["pii", "basic", "exact_dedup", "near_dedup", "near_dedup_alt"]
EXPECTED = {
    "mha": ("mha", "ar_fim", "base", BASE_STEPS, False, 1),
    "no_fim": ("mqa", "ar", "base", BASE_STEPS, False, 1),
    "fim": ("mqa", "ar_fim", "base", BASE_STEPS, False, 1),
    "stars": (
        "mqa",
        "ar_fim",
        "stars",
        ["pii", "basic", "exact_dedup", "near_dedup", "stars", "decontaminate"],
        False,
        1,
    ),
    "fertility": (
        "mqa",
        "ar_fim",
        "fertility",
        ["pii", "basic", "exact_dedup", "near_dedup", "fertility", "decontaminate"],
        False,
        1,
    ),
    "comments": (
        "mqa",
        "ar_fim",
        "comments",
        ["pii", "basic", "exact_dedup", "near_dedup", "comments", "decontaminate"],
        False,
        1,
    ),
    "dedup_alt": ("mqa", "ar_fim", "dedup_alt", [*DEDUP_ALT, "decontaminate"], True, 1),
    "final": ("mqa", "ar_fim", "final", [*DEDUP_ALT, "comments", "decontaminate"], True, 2),
}
OBJECTIVE = {"ar": "ar", "ar_fim": "fim"}


def test_the_experiment_group_holds_exactly_the_papers_eight_variants() -> None:
    assert sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_experiment_composes_to_the_papers_combination(name: str) -> None:
    attention, objective, pipeline, steps, dedup_alt, factor = EXPECTED[name]
    for scale, base_steps in (("cpu", 200), ("paper", 300_000)):
        cfg = compose_train([f"experiment={name}", f"scale={scale}"])
        assert cfg.experiment_name == name
        assert cfg.model.attention == attention
        assert cfg.objective.name == OBJECTIVE[objective]
        if objective == "ar_fim":
            assert cfg.objective.params.fim_rate == 0.5 and cfg.objective.params.fim_spm_rate == 0.5
        assert cfg.pipeline.name == pipeline
        assert list(cfg.pipeline.steps) == steps
        # The Stack's near-dedup everywhere; dedup-alt's, the same plugin again, on top of it.
        assert cfg.pipeline.params.near_dedup.mode == "stack"
        if dedup_alt:
            alt = cfg.pipeline.params.near_dedup_alt
            assert (alt.plugin, alt.mode, alt.num_perm, alt.seed) == ("near_dedup", "dedup_alt", 256, 42)
        assert cfg.scale.name == scale
        assert cfg.trainer.max_steps == base_steps * factor
        # One tokenizer for every variant of a sweep.
        assert cfg.tokenizer.train_on == "raw"
        benches = [b for run in cfg.evaluation.runs.values() for b in run.benchmarks]
        assert {
            "multiple_humaneval_py",
            "multiple_humaneval_js",
            "multiple_humaneval_java",
            "fim_py",
            "fim_js",
            "fim_java",
        } <= set(benches)
        if scale == "paper":
            assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head, cfg.model.n_inner) == (24, 2048, 16, 8192)
            assert cfg.data.seq_len == 2048 and cfg.data.global_batch_size == 192 and cfg.data.micro_batch_size == 2
            assert (cfg.trainer.devices, cfg.trainer.num_nodes, cfg.trainer.precision) == (8, 12, "16-mixed")
            assert cfg.trainer.strategy._target_ == "santa.distributed.DeepSpeedStrategy"
            assert cfg.tokenizer.vocab_size == 49152
            assert cfg.pipeline.params.stars.missing == "zero"  # The Stack: null stars = none
            assert {"multiple_mbpp_py", "multiple_mbpp_js", "multiple_mbpp_java"} <= set(benches)
        else:
            assert cfg.model.n_layer == 4 and cfg.data.seq_len == 256
            assert cfg.pipeline.params.stars.missing == "pseudo"  # the demo corpus has no stars


def test_without_an_experiment_the_demo_is_unchanged() -> None:
    cfg = compose_train([])
    assert cfg.experiment_name is None and cfg.scale.name is None
    assert cfg.trainer.max_steps == 500 and cfg.tokenizer.train_on == "clean"
    assert all(not run.benchmarks for run in cfg.evaluation.runs.values())


def test_a_user_override_of_max_steps_beats_the_scale() -> None:
    assert compose_train(["experiment=final", "trainer.max_steps=7"]).trainer.max_steps == 7
    assert compose_train(["experiment=final", "scale.steps=5"]).trainer.max_steps == 10


def test_pseudo_stars_are_deterministic_and_calibrated_to_the_papers_removal() -> None:
    step = Stars(min_stars=5, missing="pseudo", pseudo_below=0.6)
    batch = [{"repo": "local/x", "path": f"pkg/file_{i}.py", "stars": None} for i in range(4000)]
    decisions = step.process(batch)
    removed = sum(not d.keep for d in decisions) / len(decisions)
    assert 0.57 < removed < 0.63
    assert [d.keep for d in decisions] == [d.keep for d in step.process(batch)]
    # A real star count is used as it is.
    assert [
        d.keep for d in step.process([{"repo": "r", "path": "p", "stars": 4}, {"repo": "r", "path": "p", "stars": 5}])
    ] == [False, True]
    with pytest.raises(Exception, match="pseudo_below"):
        Stars(missing="pseudo", pseudo_below=1.5)


# ------------------------------------------------------------------------- end to end (slow)
# conftest's TINY, with the step count coming from the scale (so `final` would double it).
TINY_SWEEP = [
    *(
        o
        for o in TINY
        if not o.startswith(
            ("trainer.max_steps=", "trainer.val_every", "trainer.checkpoint_every", "show_samples", "data.num_workers")
        )
    ),
    "scale.steps=4",
    "trainer.val_every_n_steps=2",
    "trainer.checkpoint_every_n_steps=2",
]
TINY_EVAL = [
    "evaluation.runs.passk.benchmarks=[multiple_humaneval_py]",
    'evaluation.runs.passk.overrides=["generation=pass1","generation.n_samples=2","generation.ks=[1,2]","generation.max_new_tokens=8","limit=2"]',
    "evaluation.runs.fim.benchmarks=[fim_py]",
    'evaluation.runs.fim.overrides=["generation=fim","limit=3"]',
]


def _wandb_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_API_KEY")}
    return {**env, "WANDB_CONFIG_DIR": str(tmp / "wandb-config"), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> Path:
    """A finished multirun of three tiny variants: two on the base data, one on dedup_alt."""
    tmp = tmp_path_factory.mktemp("sweep")
    sweep = tmp / "multirun" / "tiny"
    proc = run_train_py(
        [
            "-m",
            "experiment=fim,no_fim,dedup_alt",
            *TINY_SWEEP,
            *TINY_EVAL,
            f"data.input={tiny_corpus}",
            f"cache_dir={tmp / 'cache'}",
            f"hydra.sweep.dir={sweep}",
            "logger=wandb",
        ],
        timeout=900,
        env=_wandb_env(tmp),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return sweep


def _jobs(sweep: Path) -> dict[str, Path]:
    return {
        json.loads((d / "job.json").read_text())["experiment"]: d for d in sweep.iterdir() if (d / "job.json").is_file()
    }


@pytest.mark.slow
def test_a_multirun_trains_and_evaluates_each_variant_on_shared_data(tiny_sweep: Path) -> None:
    jobs = _jobs(tiny_sweep)
    assert sorted(jobs) == ["dedup_alt", "fim", "no_fim"]
    summaries = {}
    for name, d in jobs.items():
        job = json.loads((d / "job.json").read_text())
        assert job["state"] == "finished" and job["error"] is None, job
        assert job["global_step"] == job["max_steps"] == 4
        assert (d / "checkpoints" / "last.ckpt").is_file()
        # Results next to the checkpoint, one directory per benchmark.
        for bench in ("multiple_humaneval_py", "fim_py"):
            results = json.loads((d / job["evaluation"][bench]).read_text())
            assert results["benchmark"] == bench and results["n_problems"] == (2 if bench.startswith("multiple") else 3)
            assert Path(results["model"]["source"]).resolve().is_relative_to(d.resolve())
        summaries[name] = json.loads((d / "summary.json").read_text())
        assert set(summaries[name]["evaluation"]) == {"multiple_humaneval_py", "fim_py"}
    # Same data config -> the same prepared data; another one -> its own, with the same tokenizer.
    assert summaries["fim"]["pipeline"] == summaries["no_fim"]["pipeline"] != summaries["dedup_alt"]["pipeline"]
    assert (
        summaries["fim"]["token_shards"]
        == summaries["no_fim"]["token_shards"]
        != summaries["dedup_alt"]["token_shards"]
    )
    assert len({s["tokenizer"] for s in summaries.values()}) == 1
    assert json.loads((jobs["dedup_alt"] / "job.json").read_text())["pipeline"]["name"] == "dedup_alt"
    cache = Path(summaries["fim"]["pipeline"]).parent
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2


@pytest.mark.slow
def test_each_multirun_job_is_its_own_wandb_run_in_one_group(tiny_sweep: Path) -> None:
    from wandb_records import read_run, run_files

    runs = {}
    for name, d in _jobs(tiny_sweep).items():
        files = run_files(d / "wandb")
        assert len(files) == 1, files  # one run per job, inside the job's directory
        deadline, rec = time.monotonic() + 90, read_run(files[0])
        while not rec["finished"] and time.monotonic() < deadline:
            time.sleep(0.5)
            rec = read_run(files[0])
        assert rec["finished"], f"{name}: W&B run never finished"
        runs[name] = rec
    assert len({r["id"] for r in runs.values()}) == 3
    assert {r["group"] for r in runs.values()} == {"multirun_tiny"}
    for name, rec in runs.items():
        assert rec["name"] == name and rec["job_type"] == "train"
        assert rec["config"]["config"]["experiment_name"] == name
        history = {k for row in rec["history"] for k in row}
        assert (
            "train/loss" in history
            and "eval/fim_py/exact_match" in history
            and "eval/multiple_humaneval_py/pass@1" in history
        )
        # Nothing of another job's run merged into this one: 4 training steps logged once each.
        steps = [row["trainer/global_step"] for row in rec["history"] if "train/loss" in row]
        assert steps == [0, 1, 2, 3]


@pytest.mark.slow
def test_ddp_jobs_in_a_multirun_get_one_process_group_each(tmp_path: Path, tiny_corpus: Path) -> None:
    """Lightning re-runs the script for rank 1; inside a multirun it must re-run only its job (not
    the sweep), in the job's directory, and the next job must start its own process group."""
    sweep = tmp_path / "sweep"
    proc = run_train_py(
        [
            "-m",
            "experiment=fim,no_fim",
            "trainer=ddp",
            *TINY_SWEEP,
            "data.micro_batch_size=2",
            f"data.input={tiny_corpus}",
            f"cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={sweep}",
            "evaluation.runs.passk.benchmarks=[]",
            "evaluation.runs.fim.benchmarks=[]",
            "hydra.run.dir=" + str(tmp_path / "stray"),
        ],
        timeout=600,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    jobs = _jobs(sweep)
    assert sorted(jobs) == ["fim", "no_fim"]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    # Rank 1 re-ran its job only: with Lightning's own launcher it re-runs `-m experiment=fim,no_fim`
    # and starts a second sweep of its own.
    assert proc.stdout.count("Launching 2 jobs locally") == 1, proc.stdout[-3000:]
    assert not (tmp_path / "stray").exists()  # rank 1 wrote into its job's directory, not run.dir
    for d in jobs.values():
        job = json.loads((d / "job.json").read_text())
        assert job["state"] == "finished" and job["global_step"] == 4
        assert (d / "checkpoints" / "last.ckpt").is_file()
        assert math.isfinite(job["train"]["train/loss"])
    # Rank 1 of each job joined its own 2-process group.
    assert proc.stderr.count("GLOBAL_RANK: 1, MEMBER: 2/2") == 2, proc.stderr[-3000:]


@pytest.mark.slow
def test_a_failed_job_ends_itself_not_the_sweep(tmp_path: Path, tiny_corpus: Path) -> None:
    """A user error in one job of a multirun: that job is marked failed, the next job still runs,
    and the sweep ends with exit 2 and a line per failed job (no traceback)."""
    sweep = tmp_path / "sweep"
    proc = run_train_py(
        [
            "-m",
            "experiment=fim",
            "model.attention=no_such_attention,mqa",
            *TINY_SWEEP,
            f"data.input={tiny_corpus}",
            "pipeline=none",
            f"cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={sweep}",
            "evaluation.runs.passk.benchmarks=[]",
            "evaluation.runs.fim.benchmarks=[]",
        ],
        timeout=600,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr
    failed = json.loads((sweep / "0" / "job.json").read_text())
    assert failed["state"] == "failed" and "no_such_attention" in failed["error"]
    done = json.loads((sweep / "1" / "job.json").read_text())
    assert done["state"] == "finished" and done["global_step"] == 4
    assert "1 job(s) of the sweep failed" in proc.stderr
    assert f"job #0 {sweep / '0'}: no plugin named 'no_such_attention' in group 'santa.attention'" in proc.stderr, (
        proc.stderr[-2000:]
    )
    # The same sweep again with ckpt_path=auto: each job in its old directory, the finished one
    # resumed from its last checkpoint (nothing left to train), the failed one failing again.
    again = run_train_py(
        [
            "-m",
            "experiment=fim",
            "model.attention=no_such_attention,mqa",
            *TINY_SWEEP,
            f"data.input={tiny_corpus}",
            "pipeline=none",
            f"cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={sweep}",
            "ckpt_path=auto",
            "evaluation.runs.passk.benchmarks=[]",
            "evaluation.runs.fim.benchmarks=[]",
        ],
        timeout=600,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert again.returncode == 2, again.stderr[-4000:]
    out = again.stdout + again.stderr
    assert f"Restoring states from the checkpoint path at {sweep / '1' / 'checkpoints' / 'last.ckpt'}" in out, out[
        -3000:
    ]
    assert json.loads((sweep / "1" / "job.json").read_text())["state"] == "finished"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]


# ------------------------------------------------------------------------- W&B sweep files
def _agent_commands(path: Path) -> list[list[str]]:
    """The argument lists `wandb agent` would run for every point of a grid sweep file (the
    macros expanded as wandb's agent does), without the interpreter."""
    import itertools

    import yaml
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    spec = yaml.safe_load(path.read_text())
    assert spec["method"] == "grid"
    params = spec["parameters"]
    names = list(params)
    grids = [p["values"] if "values" in p else [p["value"]] for p in params.values()]
    out = []
    for point in itertools.product(*grids):
        args = create_sweep_command_args({"args": {n: {"value": v} for n, v in zip(names, point)}})
        cmd: list[str] = []
        for item in spec["command"]:
            if item.startswith("${") and item.endswith("}"):
                cmd += {"program": [spec["program"]], "args_no_hyphens": args["args_no_hyphens"]}.get(item[2:-1], [])
            else:
                cmd.append(item)
        out.append(cmd)
    return out


def test_the_ablation_wandb_sweep_runs_the_eight_experiment_jobs() -> None:
    from conftest import ROOT

    commands = _agent_commands(ROOT / "sweeps" / "ablation.yaml")
    assert len(commands) == 8
    seen = set()
    for cmd in commands:
        assert cmd[0] == "train.py" and (ROOT / cmd[0]).is_file()
        cfg = compose_train(cmd[1:])
        assert cfg.logger._target_.endswith("WandbLogger") and cfg.scale.name == "cpu"
        seen.add(cfg.experiment_name)
    assert seen == set(EXPECTED)


def test_the_passk_temperature_wandb_sweep_composes_evaluate_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import ROOT, compose_eval
    from omegaconf import OmegaConf

    monkeypatch.setenv("SANTA_EVAL_MODEL", "/models/x")
    commands = _agent_commands(ROOT / "sweeps" / "passk_temperature.yaml")
    temps = set()
    for cmd in commands:
        assert cmd[0] == "evaluate.py" and (ROOT / cmd[0]).is_file()
        cfg = compose_eval(*cmd[1:])
        assert OmegaConf.select(cfg, "model.path") == "/models/x"
        assert cfg.generation.n_samples == 200 and list(cfg.generation.ks) == [1, 10, 100]
        temps.add(cfg.generation.temperature)
    assert len(commands) == 18 and temps == {0.1, 0.2, 0.4, 0.6, 0.8, 1.0}


@pytest.mark.slow
def test_a_batch_that_does_not_split_over_the_devices_is_a_one_line_error(tmp_path: Path, tiny_corpus: Path) -> None:
    proc = run_train_py(
        [
            "trainer=ddp",
            "data.micro_batch_size=4",
            "data.global_batch_size=4",
            f"data.input={tiny_corpus}",
            f"cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "pipeline=none",
            "tokenizer.vocab_size=400",
        ],
        timeout=300,
    )
    assert proc.returncode == 2
    assert "data.global_batch_size=4 is not a multiple of data.micro_batch_size x devices = 4 x 2" in proc.stderr
    assert "Traceback" not in proc.stderr
    job = json.loads((tmp_path / "run" / "job.json").read_text())
    assert job["state"] == "failed" and "global_batch_size" in job["error"]


@pytest.mark.slow
def test_santa_report_on_a_finished_tiny_sweep(tiny_sweep: Path, tmp_path: Path) -> None:
    import csv
    import subprocess
    import sys

    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "santa.cli", "report", str(tiny_sweep), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    md = (out / "report.md").read_text()
    assert "complete: 3 of 3 jobs finished" in md
    for section in ("pass@k", "exact match", "Data removed per filter", "Training"):
        assert section in md, section
    rows = list(csv.DictReader((out / "report.csv").open()))
    jobs = {r["variant"]: r["state"] for r in rows if r["table"] == "jobs"}
    assert jobs == {"fim": "finished", "no_fim": "finished", "dedup_alt": "finished"}
    # Our scores come from the jobs' results.json; the paper's from its tables.
    for variant, d in _jobs(tiny_sweep).items():
        fim = json.loads((d / "eval" / "fim_py" / "results.json").read_text())["scores"]["exact_match"]
        row = next(
            r for r in rows if r["table"].startswith("fim") and r["variant"] == variant and r["language"] == "Python"
        )
        assert float(row["ours"]) == pytest.approx(fim)
    baseline = next(r for r in rows if r["table"] == "humaneval" and r["variant"] == "fim" and r["metric"] == "pass@1")
    assert float(baseline["paper"]) == pytest.approx(0.12)
    removed = {(r["variant"], r["metric"]) for r in rows if r["table"] == "data_removed"}
    assert ("dedup_alt", "vs_base:bytes_pct") in removed  # the paper's Table 3 measure, per data variant
    assert any(v == "dedup_alt" and m.startswith("near_dedup_alt:") for v, m in removed)
    pngs = sorted(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
