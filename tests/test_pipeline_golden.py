"""Same results across engine changes: every preset, run on a seeded synthetic corpus (exact and
near duplicates of several strengths, tiny files, comment-free files, long lines, secrets), keeps,
rejects and deduplicates exactly the files the pipeline of commit d32fa7e did (before the scale
work of issue 14: compressed spills dropped early, compact corpus-step decisions and memory; the
file was first written at a35d0c4 and rewritten at d32fa7e, whose dedup_alt preset switched to the
reference's exact hashing).

The expected sets are a golden file, tests/golden/pipeline_presets.json, written by that commit's
code with ``python tests/test_pipeline_golden.py --write`` (the generator below is deterministic
and needs nothing from the machine). A later change that alters which files a preset keeps must
say so by rewriting the file, in its own commit.
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from santa.data.records import read_records
from santa.pipeline.parquet import read_dataset

GOLDEN = Path(__file__).parent / "golden" / "pipeline_presets.json"
# fertility needs a trained tokenizer and runs no corpus step of its own; none runs nothing.
PRESETS = ["base", "comments", "stars", "dedup_alt", "final"]

_PY = [
    "{a} = {b}({c}, {d})",
    "if {a} > {b}:",
    "    return {a} + {b}",
    "for {a} in {b}:",
    "    {a}.{b}({c})",
    "def {a}({b}, {c}):",
    "class {A}({B}):",
    "    self.{a} = {b}",
    "{a} = [{b} for {b} in {c} if {d}]",
    "import {a}",
    "from {a} import {b}",
    "    raise {A}Error('{a} {b}')",
    "{a} = {{'{b}': {c}, '{d}': {a}}}",
]
_JAVA = [
    "public class {A} extends {B} {{",
    "    private int {a} = {n};",
    "    {a} = {b}.{c}({d});",
    "    if ({a} > {b}) {{ return {c}; }}",
    "    for (int {a} = 0; {a} < {b}; {a}++) {{",
    "    }}",
    "    public void {a}({A} {b}) {{",
    "import {a}.{b}.{A};",
    '    throw new {A}Exception("{a}");',
    "}}",
]
_JS = [
    "const {a} = require('{b}');",
    "function {a}({b}, {c}) {{",
    "  return {a}.{b}({c});",
    "}}",
    "let {a} = {b} + {c};",
    "  if ({a} === {b}) {{ {c}({d}); }}",
    "export const {a} = ({b}) => {b}.{c};",
    "  {a}.forEach(({b}) => {c}.push({b}));",
    "module.exports = {{ {a}, {b} }};",
]
_LANGS = {"Python": (_PY, "#", ".py"), "Java": (_JAVA, "//", ".java"), "JavaScript": (_JS, "//", ".js")}


def synthetic_records(n: int, seed: int = 14) -> list[dict[str, Any]]:
    """``n`` The Stack-like records; about 4 % exact and 8 % near copies of earlier files (1 to 40 %
    of their lines changed), and a few files for each record filter to reject."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(1500)]
    words = lambda: {k: rng.choice(vocab) for k in "abcd"} | {k: rng.choice(vocab).title() for k in "AB"}
    out: list[dict[str, Any]] = []

    def line(templates: list[str], comment: str, density: float) -> str:
        if rng.random() < density:
            return f"{comment} {' '.join(rng.choice(vocab) for _ in range(rng.randint(3, 10)))}"
        return rng.choice(templates).format(n=rng.randint(0, 999), **words())

    for i in range(n):
        r = rng.random()
        repo = f"org{rng.randint(0, 60)}/repo{rng.randint(0, 9)}"
        if r < 0.04 and out:  # an exact copy
            src = rng.choice(out)
            lang, content = src["lang"], src["content"]
        elif r < 0.12 and out:  # a near copy: a few lines changed, or many
            src = rng.choice(out)
            lang = src["lang"]
            templates, comment, _ = _LANGS[lang]
            lines = src["content"].split("\n")
            for _ in range(max(1, int(len(lines) * rng.choice([0.01, 0.03, 0.1, 0.2, 0.4])))):
                lines[rng.randrange(len(lines))] = line(templates, comment, 0.2)
            content = "\n".join(lines)
        else:
            lang = rng.choice(list(_LANGS))
            templates, comment, _ = _LANGS[lang]
            density = rng.choice([0.0, 0.05, 0.15, 0.3, 0.9])
            size = rng.choice([2, 8, 30, 60, 120])
            content = "\n".join(line(templates, comment, density) for _ in range(size)) + "\n"
            if rng.random() < 0.02:
                content += "x = '" + "y" * 1200 + "'\n"  # basic: a line over 1000 characters
            if rng.random() < 0.05:
                content += (
                    f"{comment} contact {rng.choice(vocab)}@example.com key AKIA{rng.randint(10**15, 10**16 - 1)}\n"
                )
        ext = _LANGS[lang][2]
        stars = rng.choice([0, 1, 3, 5, 12, 400])
        out.append(
            {
                "content": content,
                "lang": lang,
                "max_stars_repo_name": repo,
                "max_stars_repo_path": f"src/f{i:05d}{ext}",
                "max_stars_count": stars,
            }
        )
    return out


def write_corpus(root: Path, records: list[dict[str, Any]], shards: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for k in range(shards):
        data = "".join(json.dumps(r) + "\n" for r in records[k::shards]).encode()
        (root / f"part-{k}.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))
    return root


def run_preset(corpus: Path, out: Path, preset: str, workers: int = 1) -> dict[str, Any]:
    """What a preset kept, rejected (by which step) and found duplicated, by (repo, path)."""
    from hydra import compose, initialize_config_dir

    from santa.pipeline.config import build_config
    from santa.pipeline.engine import run_pipeline

    conf = Path(__file__).resolve().parents[1] / "santa" / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("prepare", overrides=["input=x", "output=y", f"pipeline={preset}"])
    pcfg = build_config(
        pipeline=cfg.pipeline,
        engine={"name": "local", "workers": workers, "batch_size": 64},
        input=str(corpus),
        output=out,
        progress=False,
    )
    res = run_pipeline(pcfg)
    key = lambda r: f"{r['max_stars_repo_name']}/{r['max_stars_repo_path']}"
    rejects = read_dataset(sorted((out / "rejects").glob("*.parquet"))).to_pylist()
    dups = pq.read_table(out / "duplicates.parquet").to_pylist() if (out / "duplicates.parquet").exists() else []
    return {
        "kept": sorted(key(r) for r in read_records(res.data_files)),
        "rejected": dict(sorted((key(r), r["reject_step"]) for r in rejects)),
        # What each corpus step said about the files it dropped (the rejects' reason, statistic, details).
        "reasons": dict(
            sorted(
                (key(r), [r["reject_reason"], r["reject_stat"], r["reject_details"]])
                for r in rejects
                if r["reject_step"] in ("exact_dedup", "near_dedup", "near_dedup_alt")
            )
        ),
        "duplicates": sorted(
            [d["step"], f"{d['repo']}/{d['path']}", f"{d['duplicate_of_repo']}/{d['duplicate_of_path']}"] for d in dups
        ),
    }


N_FILES = 900


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("golden") / "in", synthetic_records(N_FILES))


def test_the_synthetic_corpus_exercises_every_corpus_step() -> None:
    golden = json.loads(GOLDEN.read_text())
    final = golden["final"]
    steps = set(final["rejected"].values())
    assert {"exact_dedup", "near_dedup", "near_dedup_alt", "basic", "comments"} <= steps, steps
    assert len({d[0] for d in final["duplicates"]}) == 3
    assert len(final["kept"]) + len(final["rejected"]) == N_FILES


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_keeps_and_rejects_the_same_files_as_before(corpus: Path, tmp_path: Path, preset: str) -> None:
    got = run_preset(corpus, tmp_path / "out", preset, workers=2 if preset == "final" else 1)
    want = json.loads(GOLDEN.read_text())[preset]
    assert got["kept"] == want["kept"]
    assert got["rejected"] == want["rejected"]
    assert got["duplicates"] == want["duplicates"]
    assert got["reasons"] == want["reasons"]


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        c = write_corpus(Path(tmp) / "in", synthetic_records(N_FILES))
        golden = {p: run_preset(c, Path(tmp) / p, p) for p in PRESETS}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print({p: {k: len(v) for k, v in g.items()} for p, g in golden.items()})
