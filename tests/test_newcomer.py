"""A newcomer's first hour: the README's evaluation command without output=, a failed run that
blocks nothing, and a refused run that leaves the files it found as they were."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, stdlib_records, write_jsonl_gz


def santa_cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "santa.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl_gz(tmp_path_factory.mktemp("newcomer") / "c.jsonl.gz", stdlib_records(40))


@pytest.mark.parametrize("fresh", [True, False], ids=["new-output", "existing-empty-output"])
def test_a_step_whose_setup_fails_blocks_no_rerun(corpus: Path, tmp_path: Path, fresh: bool) -> None:
    out = tmp_path / "clean"
    if not fresh:
        out.mkdir()
    bad = santa_cli("prepare", f"input={corpus}", f"output={out}", "pipeline.steps=[basic,decontaminate]",
                    f"pipeline.params.decontaminate.mbpp={tmp_path / 'missing-mbpp.json'}")
    assert bad.returncode == 2, bad.stderr[-3000:]
    assert "missing-mbpp.json not found" in bad.stderr and "Traceback" not in bad.stderr
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
