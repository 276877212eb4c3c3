"""A newcomer's path, end to end: a fresh clone in an empty directory (no ../shared beside it, no
$SANTA_DATA), `make demo` there, then the README's evaluation command as written (no output=) on
the demo's run directory. Tiny settings are appended (DEMO_ARGS, limit=...), nothing else.

The clone is of the committed HEAD. It reuses this test run's virtual environment (the one `make`
set up) instead of installing a second one: the clone's pyproject.toml is dated before the
environment's stamp, so `make` sees it up to date, and the clone's own santa is the one imported
(python puts the script's directory first)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

DEMO_TINY = [
    "data.demo.max_files_per_lang=40",
    "data.demo.max_bytes_per_file=20000",
    "data.val_fraction=0.1",
    "data.seq_len=64",
    "data.val_windows=4",
    "tokenizer.vocab_size=400",
    "model.n_layer=2",
    "model.n_embd=64",
    "model.n_head=4",
    "trainer.max_steps=4",
    "trainer.val_every_n_steps=2",
    "trainer.checkpoint_every_n_steps=2",
    "sample.max_new_tokens=8",
]


def readme_evaluation_command() -> list[str]:
    """The README's first evaluation command (a santa run), comments dropped."""
    text = (ROOT / "README.md").read_text()
    line = next(x for x in text.splitlines() if x.startswith("python evaluate.py model.path=outputs/<run>"))
    return shlex.split(line, comments=True)


@pytest.mark.slow
def test_make_demo_on_a_fresh_clone_then_the_readme_evaluation(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    if not (venv / ".santa-installed").is_file():
        pytest.skip("not running in the virtual environment `make` set up")
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("make and git are needed")
    clone = tmp_path / "elsewhere" / "santa"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    assert not (clone.parent / "shared").exists()
    for name in ("pyproject.toml", "constraints.txt"):
        os.utime(clone / name, (0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("SANTA_DATA", "SANTA_CACHE", "PYTHONPATH")}
    env["PYTHONUNBUFFERED"] = "1"

    demo = subprocess.run(
        ["make", "demo", f"VENV={venv}", f"DEMO_ARGS={' '.join(DEMO_TINY)}"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-4000:]
    assert "pip" not in demo.stdout  # the set-up was up to date: nothing was installed
    runs = [p for p in (clone / "outputs").glob("*/*") if (p / "checkpoints" / "last.ckpt").is_file()]
    assert len(runs) == 1, demo.stderr[-3000:]
    run = runs[0]
    assert json.loads((run / "job.json").read_text())["state"] == "finished"
    assert (run / "hf" / "model.safetensors").is_file()

    words = readme_evaluation_command()
    assert "output=" not in " ".join(words)
    rel = run.relative_to(clone).as_posix()
    words = [re.sub(r"^model\.path=outputs/<run>$", f"model.path={rel}", w) for w in words]
    tiny = ["limit=2", "generation.n_samples=2", "generation.batch_size=2"]
    ev = subprocess.run(
        [venv / "bin" / "python", *words[1:], *tiny], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    assert ev.returncode == 0, ev.stderr[-4000:]
    found = list((clone / "outputs" / "eval").glob("*/*/results.json"))
    assert len(found) == 1, ev.stderr[-3000:]
    results = json.loads(found[0].read_text())
    # The demo's 64-token context cannot take the preset's 512 new tokens: capped, with a note.
    assert "does not fit the model's" in ev.stderr
    assert results["generation"]["max_new_tokens"] == 32
