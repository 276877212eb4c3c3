"""Models by hub id: `python evaluate.py model.path=org/name` resolves through the Hugging Face
cache as transformers' `from_pretrained` does. No network: a tiny GPTBigCode model (written with
transformers, not santa) is laid out in a cache the way huggingface_hub lays it out
(models--org--name/{blobs,snapshots/<commit>,refs/main}) under a temporary HF_HOME, and every
run sets HF_HUB_OFFLINE=1."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from santa.eval.tasks import FimPy, resolve_data_dir

REPO_ID = "santa-tests/tiny-gpt_bigcode"


def write_hub_cache(hub_cache: Path, repo_id: str, model_dir: Path, commit: str) -> Path:
    """``model_dir``'s files as huggingface_hub caches a download of ``repo_id`` at ``commit``:
    content-addressed blobs, a snapshot folder of relative symlinks to them, refs/main."""
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in sorted(model_dir.iterdir()):
        data = f.read_bytes()
        blob = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        (snapshot / f.name).symlink_to(Path("..") / ".." / "blobs" / blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    from santa.data.tokenizer import special_ids, train_tokenizer

    data = resolve_data_dir(None)
    tokenizer = train_tokenizer(
        [p.prompt + (p.suffix or "") for p in FimPy(data_dir=data).problems()[:80]], vocab_size=320
    )
    eot = special_ids(tokenizer).eot
    torch.manual_seed(0)
    cfg = GPTBigCodeConfig(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=32,
        n_layer=2,
        n_head=4,
        multi_query=True,
        bos_token_id=eot,
        eos_token_id=eot,
    )
    model_dir = tmp_path_factory.mktemp("download")
    GPTBigCodeForCausalLM(cfg).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    home = tmp_path_factory.mktemp("hf_home")
    write_hub_cache(home / "hub", REPO_ID, model_dir, commit="0123456789abcdef0123456789abcdef01234567")
    return home


def run_evaluate(hf_home: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_a_hub_id_in_the_cache_is_evaluated_offline(hf_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_evaluate(
        hf_home, f"model.path={REPO_ID}", "benchmark=fim_py", "limit=2", "generation=fim_greedy", f"output={out}"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    saved = json.loads((out / "results.json").read_text())
    snapshot = (
        hf_home
        / "hub"
        / "models--santa-tests--tiny-gpt_bigcode"
        / "snapshots"
        / "0123456789abcdef0123456789abcdef01234567"
    )
    assert saved["model"]["path"] == REPO_ID and Path(saved["model"]["source"]) == snapshot
    assert saved["model"]["hub"] == {"repo_id": REPO_ID, "revision": "0123456789abcdef0123456789abcdef01234567"}
    assert saved["model"]["backend"] == "santa"  # a GPTBigCode santa converts: its own generation
    assert saved["n_samples"] == 2 and set(saved["scores"]) == {"exact_match"}
    # Pinned to the commit, and through transformers' own loader: the same snapshot.
    out2 = tmp_path / "out2"
    res = run_evaluate(
        hf_home,
        f"model.path={REPO_ID}",
        "model.revision=0123456789abcdef0123456789abcdef01234567",
        "model.backend=hf",
        "benchmark=fim_py",
        "limit=2",
        "generation=fim_greedy",
        f"output={out2}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    again = json.loads((out2 / "results.json").read_text())
    assert again["model"]["backend"] == "hf" and Path(again["model"]["source"]) == snapshot
    assert [s["raw"] for s in again["samples"]] == [s["raw"] for s in saved["samples"]]  # greedy: same text


def test_a_hub_id_not_in_the_cache_offline_is_one_clear_line(hf_home: Path, tmp_path: Path) -> None:
    res = run_evaluate(
        hf_home, "model.path=bigcode/gpt_bigcode-santacoder", "benchmark=fim_py", f"output={tmp_path / 'o'}"
    )
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if "bigcode/gpt_bigcode-santacoder" in line]
    assert len(lines) == 1 and "HF_HUB_OFFLINE" in lines[0] and "not in the Hugging Face cache" in lines[0], res.stderr
    # A revision the cache does not hold is the same kind of error.
    res = run_evaluate(
        hf_home, f"model.path={REPO_ID}", "model.revision=v2", "benchmark=fim_py", f"output={tmp_path / 'p'}"
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "HF_HUB_OFFLINE" in res.stderr and "revision v2" in res.stderr


def test_paths_that_are_not_hub_ids_say_they_do_not_exist(tmp_path: Path) -> None:
    from santa.artifacts import ArtifactError, is_hub_id, resolve_model_path
    from santa.eval.models import load_generator
    from santa.eval.settings import EvaluationError

    assert is_hub_id("bigcode/gpt_bigcode-santacoder") and is_hub_id("gpt2")
    for path in ("outputs/2025-01-01/12-00-00", "./run", "~/models/x", "/abs/dir", "last.ckpt", "a//b"):
        assert not is_hub_id(path), path
    with pytest.raises(EvaluationError, match="does not exist"):
        load_generator(tmp_path / "nothing")
    with pytest.raises(ArtifactError, match="no model at"):
        resolve_model_path("runs/a/b/last.ckpt")
    (tmp_path / "local").mkdir()
    with pytest.raises(ArtifactError, match="applies to hub ids"):
        resolve_model_path(tmp_path / "local", revision="main")
