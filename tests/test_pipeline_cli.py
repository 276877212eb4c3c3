"""`santa prepare` as a user runs it (subprocesses): a real small corpus end to end with the final
preset, Hydra overrides, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_santa

from santa.data.corpus import build_demo_corpus, find_local_sources
from santa.data.records import read_records

santa = run_santa


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "corpus"
    build_demo_corpus(
        out, max_files_per_lang=60, max_bytes_per_file=50_000, sources=[s for s in find_local_sources() if s.available]
    )
    return out


def test_prepare_final_on_a_real_corpus_end_to_end(small_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "clean"
    res = santa("prepare", f"input={small_corpus}", f"output={out}", "pipeline=final", "engine.workers=2")
    assert res.returncode == 0, res.stderr[-4000:]
    assert "pipeline report" in res.stderr and "near_dedup" in res.stderr
    report = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in report["steps"]]
    assert names == [
        "input",
        "pii",
        "basic",
        "exact_dedup",
        "near_dedup",
        "near_dedup_alt",
        "comments",
        "decontaminate",
    ]
    near = report["steps"][names.index("near_dedup")]
    assert near["params"]["mode"] == "stack" and "plugin" not in near
    alt = report["steps"][names.index("near_dedup_alt")]
    assert alt["plugin"] == "near_dedup" and alt["params"]["mode"] == "dedup_alt"
    assert (alt["params"]["bands"], alt["params"]["rows"]) == (25, 10)
    assert alt["read"]["files"] == near["kept"]["files"]  # on top of The Stack's near-dedup
    read = report["steps"][0]["read"]["files"]
    assert read == sum(1 for _ in read_records(sorted(small_corpus.rglob("*.jsonl.gz"))))
    clean = list(read_records(out / "data"))
    assert len(clean) == report["totals"]["kept"]["files"] > 0
    assert {"content", "lang", "max_stars_repo_name", "max_stars_repo_path", "hexsha"} <= set(clean[0])
    assert (out / "_SUCCESS").is_file() and (out / "plots" / "comments.png").is_file()
    # Same command again: nothing recomputed.
    again = santa("prepare", f"input={small_corpus}", f"output={out}", "pipeline=final")
    assert again.returncode == 0 and "up to date" in again.stderr


def test_prepare_takes_step_lists_and_parameters_as_overrides(small_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = santa(
        "prepare",
        f"input={small_corpus}/train/*.jsonl.gz",
        f"output={out}",
        "pipeline.steps=[basic,comments]",
        "pipeline.params.comments.max_ratio=0.3",
        "engine.workers=1",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in report["steps"]] == ["input", "basic", "comments"]
    assert report["steps"][2]["params"]["max_ratio"] == 0.3


def test_prepare_errors_are_clear(tmp_path: Path) -> None:
    res = santa("prepare", "pipeline=base")
    assert res.returncode == 2 and "needs input=" in res.stderr and "Traceback" not in res.stderr
    res = santa("prepare", f"input={tmp_path / 'nope.jsonl'}", f"output={tmp_path / 'o'}")
    assert res.returncode == 2 and "no such file or directory" in res.stderr
    res = santa("prepare", "input=x", "output=y", "pipeline=nonexistent")
    assert res.returncode == 2 and "pipeline" in res.stderr and "Traceback" not in res.stderr
    f = tmp_path / "in.jsonl"
    f.write_text('{"content": "x = 1\\n", "lang": "Python"}\n')
    res = santa("prepare", f"input={f}", f"output={tmp_path / 'o'}", "pipeline=stars")
    assert res.returncode == 2 and "no star count" in res.stderr and "Traceback" not in res.stderr
    res = santa("prepare", f"input={f}", f"output={tmp_path / 'o2'}", "pipeline=fertility")
    assert res.returncode == 2 and "tokenizer=" in res.stderr
    # A message is printed as text, not as rich markup: brackets in a path survive.
    pattern = tmp_path / "[ab]" / "*.jsonl"
    res = santa("prepare", f"input='{pattern}'", f"output={tmp_path / 'o3'}")
    assert res.returncode == 2 and f"no files match the pattern {pattern}" in " ".join(res.stderr.split()), res.stderr


def test_prepare_prints_its_configuration() -> None:
    res = santa("prepare", "--cfg", "input=a", "output=b", "pipeline=dedup_alt", "engine=ray")
    assert res.returncode == 0
    assert "mode: dedup_alt" in res.stdout and "name: ray" in res.stdout


@pytest.mark.slow
def test_prepare_killed_midway_resumes_to_the_same_outputs(small_corpus: Path, tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "santa.cli",
        "prepare",
        f"input={small_corpus}",
        f"output={out}",
        "pipeline=dedup_alt",
        "engine.workers=1",
        "engine.batch_size=8",
    ]
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    try:
        while not list(out.glob(".santa-work/*/units/s0-u0000[1-9].done.json")):  # a few units done
            assert proc.poll() is None and time.monotonic() < deadline, "finished or stalled before the kill"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no clean shutdown, as a preempted job dies
        proc.wait()
    assert not (out / "_SUCCESS").exists() and not (out / "report.json").exists()
    resumed = santa(*args[3:])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    fresh = santa(*[a.replace(str(out), str(tmp_path / "fresh")) for a in args[3:]])
    assert fresh.returncode == 0
    report = json.loads((out / "report.json").read_text())
    assert report["resumed_units"] >= 2
    rows = lambda d: sorted(json.dumps(r, sort_keys=True) for r in read_records(d / "data"))  # noqa: E731
    assert rows(out) == rows(tmp_path / "fresh")
