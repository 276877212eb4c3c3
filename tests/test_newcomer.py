"""A newcomer's first hour: the README's evaluation command without output=, a failed run that
blocks nothing, and a refused run that leaves the files it found as they were."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_santa, run_train_py, stdlib_records, tiny_overrides, write_jsonl_gz

santa_cli = functools.partial(run_santa, timeout=300)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl_gz(tmp_path_factory.mktemp("newcomer") / "c.jsonl.gz", stdlib_records(40))


@pytest.mark.parametrize("fresh", [True, False], ids=["new-output", "existing-empty-output"])
def test_a_step_whose_setup_fails_blocks_no_rerun(corpus: Path, tmp_path: Path, fresh: bool) -> None:
    out = tmp_path / "clean"
    if not fresh:
        out.mkdir()
    bad = santa_cli(
        "prepare",
        f"input={corpus}",
        f"output={out}",
        "pipeline.steps=[basic,decontaminate]",
        f"pipeline.params.decontaminate.apps={tmp_path / 'missing-apps.jsonl'}",
    )
    assert bad.returncode == 2, bad.stderr[-3000:]
    assert "missing-apps.jsonl not found" in bad.stderr and "Traceback" not in bad.stderr
    # The output is as it was found: absent, or the empty folder the user made.
    assert (out.exists() and not any(out.iterdir())) if not fresh else not out.exists()
    good = santa_cli("prepare", f"input={corpus}", f"output={out}", "pipeline.steps=[basic,decontaminate]")
    assert good.returncode == 0, good.stderr[-3000:]
    assert (out / "_SUCCESS").is_file()


def test_a_lock_file_left_by_a_failed_setup_is_taken_over(corpus: Path, tmp_path: Path) -> None:
    # What an earlier santa (before the clean-up) left: the output folder with only its lock.
    out = tmp_path / "clean"
    out.mkdir()
    (out / ".lock").write_text("")
    good = santa_cli("prepare", f"input={corpus}", f"output={out}", "pipeline.steps=[basic]")
    assert good.returncode == 0, good.stderr[-3000:]
    # A folder santa did not write is still refused.
    other = tmp_path / "theirs"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    refused = santa_cli("prepare", f"input={corpus}", f"output={other}", "pipeline.steps=[basic]")
    assert refused.returncode == 2 and "did not write" in refused.stderr
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_evaluate_without_output_writes_under_outputs(tmp_path: Path) -> None:
    from santa.eval.tasks import FimPy

    problems = FimPy().problems()[:2]
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": p.task_id, "completion": p.answer}) + "\n" for p in problems))
    env = {k: v for k, v in os.environ.items() if k != "SANTA_DATA"}
    res = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), "benchmark=fim_py", f"samples={samples}", "limit=2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    found = list((tmp_path / "outputs" / "eval").glob("*/*/results.json"))
    assert len(found) == 1, res.stderr[-2000:]


# --------------------------------------------------------------------------- interruptions
def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _train_cmd(overrides: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *overrides]


@pytest.mark.slow
def test_a_refused_resume_leaves_the_run_byte_identical(tiny_corpus: Path, cache_dir: Path, tmp_path: Path) -> None:
    import torch

    run = tmp_path / "run"
    done = run_train_py(tiny_overrides(tiny_corpus, cache_dir, run, "trainer.max_steps=3"))
    assert done.returncode == 0, done.stderr[-3000:]
    before = _tree(run)
    assert "csv/metrics.csv" in before and ".hydra/config.yaml" in before and "job.json" in before
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_text("not a checkpoint")
    cases = {
        "another model config": ["model.n_embd=96", "ckpt_path=last"],
        "missing checkpoint": [f"ckpt_path={tmp_path / 'nope.ckpt'}"],
        "foreign checkpoint": [f"ckpt_path={foreign}"],
        "unreadable checkpoint": [f"ckpt_path={garbage}"],
    }
    for case, extra in cases.items():
        res = run_train_py(tiny_overrides(tiny_corpus, cache_dir, run, "trainer.max_steps=6", *extra))
        assert res.returncode == 2, (case, res.stderr[-2000:])
        assert "Traceback" not in res.stderr and "nothing was changed" in res.stderr.lower(), (case, res.stderr[-2000:])
        assert _tree(run) == before, case


@pytest.mark.slow
def test_a_failed_invocation_leaves_no_run_folder(tmp_path: Path) -> None:
    res = subprocess.run(
        _train_cmd([f"data.input={tmp_path / 'no-such-corpus'}"]),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2 and "no-such-corpus" in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*"))


@pytest.mark.slow
def test_sigterm_and_sigint_save_the_step_and_resume_exactly(
    tiny_corpus: Path, cache_dir: Path, tmp_path: Path
) -> None:
    import csv
    import json
    import signal
    import time

    from conftest import losses_by_step, read_metrics

    common = ["trainer.max_steps=60", "trainer.checkpoint_every_n_steps=3", "trainer.val_every_n_steps=20"]
    full = run_train_py(tiny_overrides(tiny_corpus, cache_dir, tmp_path / "full", *common))
    assert full.returncode == 0, full.stderr[-3000:]

    run = tmp_path / "run"
    cmd = _train_cmd(tiny_overrides(tiny_corpus, cache_dir, run, *common))
    rows_after: list[list[dict]] = []
    for attempt, sig in enumerate((signal.SIGTERM, signal.SIGINT)):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Signal once this attempt has trained a few steps of its own.
        first = 0 if attempt == 0 else int(json.loads((run / "job.json").read_text())["global_step"])
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            steps = (
                {int(r["step"]) for r in read_metrics(run) if r.get("train/loss")}
                if (run / "csv" / "metrics.csv").exists()
                else set()
            )
            if steps and max(steps) >= first + 3:
                break
            time.sleep(0.01)
        proc.send_signal(sig)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=60)
        assert time.monotonic() - t0 < 30
        assert proc.returncode == 128 + sig, (proc.returncode, err[-3000:])
        job = json.loads((run / "job.json").read_text())
        assert job["state"] == "interrupted" and job["signal"] == sig.name, job
        step = job["global_step"]
        assert 0 < step < 60 and f"stopped at step {step}" in err and "Resume with:" in err
        ckpt = torch_load(run / "checkpoints" / "last.ckpt")
        assert ckpt["global_step"] == step
        assert "ckpt_path=last" in job["resume"] and f"hydra.run.dir={run}" in job["resume"]
        # The next attempt runs the command job.json gives, as a user would.
        assert job["resume"].startswith("python train.py ")
        cmd = _train_cmd(__import__("shlex").split(job["resume"])[2:])
        rows_after.append(read_metrics(run))
    final = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    assert json.loads((run / "job.json").read_text())["state"] == "finished"
    # Every attempt's rows are still there, in order, with one header.
    rows = read_metrics(run)
    for earlier in rows_after:
        assert rows[: len(earlier)] == earlier
    with open(run / "csv" / "metrics.csv") as fh:
        lines = list(csv.reader(fh))
    assert lines.count(lines[0]) == 1  # one header
    # The stitched run has the uninterrupted losses (the last attempt's value for a repeated step).
    want, got = losses_by_step(tmp_path / "full"), losses_by_step(run)
    assert sorted(got) == sorted(want) == list(range(60))
    for s in want:
        assert got[s] == pytest.approx(want[s], abs=1e-6), s


def torch_load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def test_prepare_says_when_nothing_was_produced(corpus: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    res = santa_cli("prepare", f"input={empty}", f"output={tmp_path / 'a'}", "pipeline.steps=[basic]")
    assert res.returncode == 2 and "read no records from input" in res.stderr and "(empty input)" in res.stderr
    # Every file dropped: a warning naming the step, exit 0 (the rejects are the output).
    res = santa_cli(
        "prepare",
        f"input={corpus}",
        f"output={tmp_path / 'b'}",
        "pipeline.steps=[basic]",
        "pipeline.params.basic.max_line_length=1",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "every one of the" in res.stderr and "basic dropped" in " ".join(res.stderr.split())


def test_the_resume_command_starts_as_the_run_was_started(monkeypatch: pytest.MonkeyPatch) -> None:
    # `santa train` hands Hydra sys.argv[0] = "<santa> train" (santa.cli.main): a user of the
    # installed wheel, with no train.py beside them, is told to rerun `santa train`.
    from santa.training import resume_command

    monkeypatch.setattr(sys, "argv", ["/venv/bin/santa train", "trainer.max_steps=3"])
    assert resume_command(Path("/runs/r")).startswith("santa train ckpt_path=last ")
    monkeypatch.setattr(sys, "argv", ["train.py", "trainer.max_steps=3"])
    assert resume_command(Path("/runs/r")).startswith("python train.py ckpt_path=last ")
