"""Shared fixtures: a tiny real corpus (files of this machine's Python standard library, in The
Stack's record format), Hydra composition of the real conf/, and a tiny training configuration."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import santa.entry  # noqa: F401  (registers santa's OmegaConf resolvers)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# A model and data small enough that a fit of a few steps takes seconds on 2 cores.
TINY = [
    "model.n_layer=2",
    "model.n_embd=64",
    "model.n_head=4",
    "data.seq_len=64",
    "data.micro_batch_size=4",
    "data.global_batch_size=4",
    "data.val_windows=8",
    "data.num_workers=0",
    "tokenizer.vocab_size=400",
    "tokenizer.files_per_lang=200",
    "trainer.max_steps=6",
    "trainer.val_every_n_steps=3",
    "trainer.checkpoint_every_n_steps=3",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "export_hf=false",
    "show_samples=false",
]


def stdlib_records(n: int, max_bytes: int = 12_000) -> list[dict]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for path in sorted(stdlib.glob("*.py")):
        data = path.read_bytes()
        if len(data) > max_bytes or not data.strip():
            continue
        out.append(
            {
                "content": data.decode("utf-8"),
                "lang": "Python",
                "max_stars_repo_name": "local/python-stdlib",
                "max_stars_repo_path": path.name,
                "max_stars_count": None,
            }
        )
        if len(out) == n:
            break
    return out


def write_jsonl_gz(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl_gz(tmp_path_factory.mktemp("corpus") / "stdlib.jsonl.gz", stdlib_records(120))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One stage cache for the whole session: tests that share data config share its stages."""
    return tmp_path_factory.mktemp("cache")


def compose_conf(name: str, overrides: list[str] = ()) -> DictConfig:
    """Compose conf/<name>.yaml with Hydra overrides, as the entry points do."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def compose_train(overrides: list[str] = ()) -> DictConfig:
    return compose_conf("train", overrides)


def compose_eval(*overrides: str) -> DictConfig:
    return compose_conf("evaluate", list(overrides))


@pytest.fixture
def tiny_cfg(tiny_corpus: Path, cache_dir: Path, tmp_path: Path):
    """A factory: the tiny config with extra overrides, run_dir in tmp_path."""

    def make(*extra: str, run_dir: Path | None = None) -> DictConfig:
        cfg = compose_train(
            [
                *TINY,
                f"data.input={tiny_corpus}",
                f"cache_dir={cache_dir}",
                f"run_dir={run_dir or tmp_path / 'run'}",
                *extra,
            ]
        )
        return cfg

    return make


def tiny_overrides(tiny_corpus: Path, cache_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    return [*TINY, f"data.input={tiny_corpus}", f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", *extra]


def run_train_py(overrides: list[str], *, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python train.py` in a subprocess, from the repository root, as a user runs it."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def run_santa(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    """The `santa` command in a subprocess (``python -m santa.cli``), as a user runs it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "santa.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def read_metrics(run_dir: Path) -> list[dict]:
    import csv

    with open(run_dir / "csv" / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def losses_by_step(run_dir: Path, key: str = "train/loss") -> dict[int, float]:
    return {int(r["step"]): float(r[key]) for r in read_metrics(run_dir) if r.get(key)}


def as_dict(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
