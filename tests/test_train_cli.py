"""`python train.py` as a user runs it, in subprocesses: resuming after a kill continues exactly,
2-process CPU DDP matches a single process, and bad input stops with a clear message."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, losses_by_step, run_train_py, tiny_overrides


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            try:  # written completely (Lightning writes in place): loadable
                torch.load(path, map_location="cpu", weights_only=True)
                return
            except Exception:
                pass
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"training ended before {path} appeared:\n{err[-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"{path} did not appear in {timeout}s")


@pytest.mark.slow
def test_resume_after_kill_gives_the_uninterrupted_losses(tiny_corpus: Path, cache_dir: Path, tmp_path: Path) -> None:
    common = ["trainer.max_steps=16", "trainer.checkpoint_every_n_steps=4", "trainer.val_every_n_steps=5"]
    full = run_train_py(tiny_overrides(tiny_corpus, cache_dir, tmp_path / "full", *common))
    assert full.returncode == 0, full.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *tiny_overrides(tiny_corpus, cache_dir, killed_dir, *common)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    ckpt = killed_dir / "checkpoints" / "step_000004.ckpt"
    try:
        _wait_for(ckpt, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no clean shutdown: as a preempted job dies
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    resumed = run_train_py(tiny_overrides(tiny_corpus, cache_dir, tmp_path / "resumed", *common, f"ckpt_path={ckpt}"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    want, got = losses_by_step(tmp_path / "full"), losses_by_step(tmp_path / "resumed")
    assert sorted(got) == list(range(4, 16))
    for step in got:
        assert got[step] == pytest.approx(want[step], abs=1e-6), (step, got[step], want[step])


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one(tiny_corpus: Path, cache_dir: Path, tmp_path: Path) -> None:
    # Same global batch (4 sequences): 1 process x 4, or 2 gloo processes x 2. Dropout off, as its
    # masks are drawn per process.
    common = ["trainer.max_steps=5", "model.dropout=0.0", "data.global_batch_size=4"]
    single = run_train_py(tiny_overrides(tiny_corpus, cache_dir, tmp_path / "one", *common, "data.micro_batch_size=4"))
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = run_train_py(
        tiny_overrides(tiny_corpus, cache_dir, tmp_path / "ddp", *common, "trainer=ddp", "data.micro_batch_size=2")
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "world_size: 2" in ddp.stderr or "2 process(es)" in ddp.stderr
    one, two = losses_by_step(tmp_path / "one"), losses_by_step(tmp_path / "ddp")
    assert sorted(one) == sorted(two) == list(range(5))
    for step in one:
        assert two[step] == pytest.approx(one[step], abs=2e-4), (step, one, two)
    # Not trivially equal because nothing trained: the loss moved.
    assert abs(one[4] - one[0]) > 1e-3


def _error_of(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def test_missing_corpus_path_is_a_clear_error(cache_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-corpus.jsonl.gz"
    res = run_train_py(tiny_overrides(missing, cache_dir, tmp_path / "run"))
    assert f"no such file or directory: {missing}" in _error_of(res)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_empty_corpus_is_a_clear_error(cache_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl.gz"
    with gzip.open(empty, "wt"):
        pass
    msg = _error_of(run_train_py(tiny_overrides(empty, cache_dir, tmp_path / "run")))
    assert "no documents" in msg and str(empty) in msg


def test_tokenizer_without_specials_is_a_clear_error(tiny_corpus: Path, cache_dir: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    tok.train_from_iterator(["def f(x):\n    return x\n"] * 10, trainers.BpeTrainer(vocab_size=300))
    path = tmp_path / "plain" / "tokenizer.json"
    path.parent.mkdir()
    tok.save(str(path))
    msg = _error_of(run_train_py(tiny_overrides(tiny_corpus, cache_dir, tmp_path / "run", f"tokenizer.path={path}")))
    assert "lacks the special tokens" in msg and "<fim-prefix>" in msg and str(path) in msg
