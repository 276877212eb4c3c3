"""Every command in the README and docs/ is checked as written, so documentation cannot drift from
the code: Hydra commands (train / evaluate / prepare, sweeps expanded job by job) are composed with
their exact overrides; cheap commands (plugins, sandbox, pii-eval, generate, infill, prepare on a
small corpus, evaluation reports) are run for real with tiny settings appended. A command this test
does not know how to check fails it: a new command in the docs needs a rule here."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY, compose_conf, run_train_py, stdlib_records, write_jsonl_gz

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SANTA_COMMANDS = (
    "train",
    "evaluate",
    "prepare",
    "generate",
    "infill",
    "plugins",
    "sandbox",
    "pii-eval",
    "report",
    "eval-report",
)
PROGRAMS = (
    "python ",
    *(f"santa {c}" for c in SANTA_COMMANDS),
    "make ",
    "pip ",
    ".venv/bin/",
    "wandb ",
    "ray ",
    "OMP_NUM_THREADS=",
    "$ ",
)

# Commands that are checked elsewhere or cannot run here, each with the reason.
NOT_HERE = {
    "make demo": "tests/test_fresh_clone.py runs it on a fresh clone",
    "make test": "the suite itself (CI runs it)",
    "wandb sweep": "needs a W&B server; sweeps/*.yaml are expanded by tests/test_sweep.py",
    "ray start": "starts a cluster",
    "pip install": "installs packages; tests/test_external_plugins.py installs the example plugins",
    ".venv/bin/pip install": "installs packages; tests/test_external_plugins.py installs the example plugins",
    "python benchmarks/": "performance scripts, run by make bench",
    ".venv/bin/python -m santa.eval.sandbox": "shown with its output; `santa sandbox` is run here",
    "santa report": "needs a finished sweep; tests/test_sweep_report.py and test_sweep.py run it",
}
# Hypothetical or separately installed plugins the docs use as examples.
EXAMPLE_PLUGINS = ("base_license", "license", "tiny_swa", "base_generated")


def doc_commands() -> list[tuple[str, str]]:
    """(file, command) for every command line in a fenced block, continuation lines joined and
    quoted newlines kept, comments dropped."""
    out = []
    for path in DOCS:
        text = path.read_text()
        # Every fenced block, so that a block in another language (yaml) does not pair its
        # closing fence with the next block's opening one; only shell blocks hold commands.
        blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
        for block in (b for lang, b in blocks if lang in ("", "bash", "sh", "console", "shell")):
            pending = ""
            for line in block.splitlines():
                if not pending and not line.strip().startswith(PROGRAMS):
                    continue
                pending = f"{pending}\n{line}" if pending else line
                if pending.endswith("\\"):
                    pending = pending[:-1]
                    continue
                try:
                    shlex.split(pending, comments=True)
                except ValueError:  # an open quote: the command goes on
                    continue
                out.append((path.relative_to(ROOT).as_posix(), pending.strip()))
                pending = ""
    return out


COMMANDS = doc_commands()


def test_the_docs_have_commands() -> None:
    files = {f for f, _ in COMMANDS}
    assert {"README.md", "docs/evaluation.md", "docs/pipeline.md", "docs/sweep.md"} <= files
    assert len(COMMANDS) > 40


def _words(command: str) -> list[str]:
    # A synopsis placeholder with spaces is one word.
    command = re.sub(r"<[^<>]*>", lambda m: m.group(0).replace(",", "").replace(" ", "_"), command)
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # OMP_NUM_THREADS=1 python ...
        words = words[1:]
    if words and words[0] == "$":
        words = words[1:]
    return words


def _expand_alternatives(words: list[str]) -> list[list[str]]:
    """`pipeline=base|stars` and `engine=local|ray` in a synopsis: one command per alternative;
    `[FILE]`-style optional parts dropped."""
    kept, depth = [], 0
    for w in words:
        if w.startswith("[") and "=" not in w.split("]")[0]:
            depth += 1
        if depth == 0:
            kept.append(w)
        elif w.endswith("]"):
            depth -= 1
    words = kept
    variants: list[list[str]] = [[]]
    for w in words:
        m = re.fullmatch(r"([\w.]+)=([\w|]+\|[\w|]+)", w)
        options = [f"{m.group(1)}={v}" for v in m.group(2).split("|")] if m else [w]
        variants = [v + [o] for v in variants for o in options]
    return variants


def _sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs of a `-m` command, as Hydra's basic sweeper splits them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path, cache_dir: Path) -> dict[str, str]:
    """Real things for the docs' placeholders: a small corpus, an output folder, a tiny trained run."""
    root = tmp_path_factory.mktemp("docs")
    corpus = root / "corpus"
    write_jsonl_gz(corpus / "part-0.jsonl.gz", stdlib_records(30))
    run = root / "run"
    res = run_train_py(
        [
            *TINY,
            f"data.input={tiny_corpus}",
            f"cache_dir={cache_dir}",
            f"hydra.run.dir={run}",
            "trainer.max_steps=2",
            "export_hf=true",
        ]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    # An evaluation's results.json, for the commands that tabulate results.
    from santa.eval.tasks import FimPy

    samples = root / "samples.jsonl"
    samples.write_text(
        "".join(json.dumps({"task_id": p.task_id, "completion": p.answer}) + "\n" for p in FimPy().problems()[:2])
    )
    ev = subprocess.run(
        [
            sys.executable,
            str(ROOT / "evaluate.py"),
            "benchmark=fim_py",
            f"samples={samples}",
            "limit=2",
            f"output={root / 'evals' / 'fim'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    return {"corpus": str(corpus), "run": str(run), "root": str(root), "evals": str(root / "evals")}


def _substitute(word: str, place: dict[str, str], out: Path) -> str:
    run = place["run"]
    word = re.sub(r"outputs/(\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d|<run>|\.\.\.)(?=/|$)", run, word)
    word = word.replace("<file_dir_or_glob>", place["corpus"]).replace("corpus/", place["corpus"] + "/")
    if word.startswith("input=") and word.endswith("="):
        word += place["corpus"]
    word = word.replace("<dir>", str(out)).replace("<preset>", "base")
    if word in ("output=clean", "output=eval/", "output=b"):
        word = f"output={out}"
    return word


def _compose_check(config: str, overrides: list[str]) -> None:
    # `hydra.*` overrides configure the launcher, not the job: compose() rejects them.
    job = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
    compose_conf(config, job)


def _run(words: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    if words[0] == "santa":
        words = [sys.executable, "-m", "santa", *words[1:]]
    elif words[0] == "python":
        words = [sys.executable, *words[1:]]
    return subprocess.run(words, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("where,command", COMMANDS, ids=[f"{f}:{c[:60]}" for f, c in COMMANDS])
def test_doc_command(where: str, command: str, place: dict[str, str], tmp_path: Path) -> None:
    words = _words(command)
    for prefix, reason in NOT_HERE.items():
        if " ".join(words).startswith(prefix) or command.startswith(prefix):
            pytest.skip(reason)
    if any(p in w for w in words for p in EXAMPLE_PLUGINS):
        pytest.skip("an example plugin package (installed and run by tests/test_external_plugins.py)")
    for variant in _expand_alternatives(words):
        check(variant, place, tmp_path)


def check(words: list[str], place: dict[str, str], tmp: Path) -> None:
    out = tmp / "out"
    words = [_substitute(w, place, out) for w in words]
    head = words[:2]
    if head in (["python", "train.py"], ["santa", "train"], ["python", "evaluate.py"], ["santa", "evaluate"]):
        config = "train" if "train" in head[1] else "evaluate"
        overrides = words[2:]
        jobs = _sweep_jobs([o for o in overrides if o != "-m"]) if "-m" in overrides else [overrides]
        for job in jobs:
            _compose_check(config, job)
        return
    if head == ["santa", "prepare"]:
        overrides = [w for w in words[2:] if w != "--cfg"]
        if any(w.startswith("input=") and place["corpus"] not in w for w in overrides):
            # The Stack's paths, a cluster's: the config must compose; nothing to read here.
            _compose_check("prepare", overrides)
            return
        tiny = ["engine.num_cpus=1"] if "engine=ray" in words else ["engine.workers=1"]
        if "pipeline=stars" in words:  # the demo corpus has no star counts: the docs say to choose
            tiny.append("pipeline.params.stars.missing=pseudo")
        if "pipeline=fertility" in words and not any(w.startswith("tokenizer=") for w in words):
            tiny.append(f"tokenizer={place['run']}/hf")  # fertility counts tokens: the docs say to give one
        res = _run([*words, *tiny], tmp)
        assert res.returncode == 0, (words, res.stderr[-3000:])
        return
    if head in (["santa", "generate"], ["santa", "infill"]):
        res = _run([*words, "--max-new-tokens", "4"], tmp)
        assert res.returncode == 0, (words, res.stderr[-3000:])
        return
    if head in (["santa", "plugins"], ["santa", "sandbox"], ["santa", "pii-eval"]):
        res = _run(words, tmp)
        assert res.returncode == 0, (words, res.stderr[-3000:])
        return
    if words[:3] == ["python", "-m", "santa.eval.tables"]:
        res = _run([*words[:3], place["evals"], *words[4:]], tmp)
        assert res.returncode == 0, (words, res.stderr[-3000:])
        return
    raise AssertionError(f"no rule to check this documented command: {' '.join(words)}")
