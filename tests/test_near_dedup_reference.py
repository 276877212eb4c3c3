"""santa's `near_dedup mode=dedup_alt` side by side with BigCode's dedup-alt, on real files.

The reference is bigcode-analysis's data_analysis/near-deduplication/minhash_deduplication_alt.py
(commit 14573fd), re-implemented below from its description with the libraries it used, without
any of santa's near-dedup code:
- records with fewer than ``min_token_length`` (10) non-empty pieces of
  ``re.split("[^A-Za-z_0-9]", content)`` leave the dataset first; the others get sequential ids;
- a record's shingles are the set of its 5-grams of *all* those pieces (the empty strings between
  consecutive separators included), each joined with single spaces and UTF-8 encoded (a record
  with fewer than 5 pieces: one shingle of them all);
- datasketch ``MinHash(num_perm=256, seed=42)`` of that set, with datasketch's default hash
  (SHA-1, 32 bits) and, since the script predates datasketch 2.0, the only permutation scheme
  datasketch had then (``scheme="legacy"`` today);
- ``MinHashLSH(threshold=0.7, num_perm=256)`` (25 bands of 10 rows); each record's neighbours are
  the records it shares a band with; the graph of those edges is split into connected
  components, and all but the smallest id of each component are removed.

The corpus is built here from the Python standard library on this machine, with near-duplicates
injected the ways they occur in GitHub code: identifiers renamed, code re-indented, a line or a
block added, and the same file from two versions of Python (where the machine has two).
"""

from __future__ import annotations

import builtins
import glob
import json
import keyword
import os
import random
import re
import subprocess
import sys
import sysconfig
from collections import Counter
from pathlib import Path

import networkx as nx
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash, MinHashLSH

ROOT = Path(__file__).resolve().parents[1]
NON_ALPHA = re.compile("[^A-Za-z_0-9]")


# -- the reference, from its description ---------------------------------------------------------


def reference_dedup_alt(
    contents: list[str], threshold: float = 0.7, num_perm: int = 256, ngram: int = 5, min_token_length: int = 10
) -> tuple[set[int], set[int]]:
    """(indices the reference removes as too short, indices it removes as near-duplicates)."""
    short = {i for i, c in enumerate(contents) if len([t for t in NON_ALPHA.split(c) if t]) < min_token_length}
    ids = [i for i in range(len(contents)) if i not in short]  # __id__ k is record ids[k]
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert (lsh.b, lsh.r) == (25, 10)
    sketches = []
    for k, i in enumerate(ids):
        pieces = NON_ALPHA.split(contents[i])
        grams = [tuple(pieces)] if ngram > len(pieces) else zip(*(pieces[j:] for j in range(ngram)))
        m = MinHash(num_perm=num_perm, seed=42, scheme="legacy")
        m.update_batch([s.encode("utf-8") for s in {" ".join(g) for g in grams}])
        lsh.insert(k, m)
        sketches.append(m)
    graph = nx.Graph()
    for k, m in enumerate(sketches):
        graph.add_edges_from((k, other) for other in lsh.query(m) if other != k)
    dups: set[int] = set()
    for component in nx.connected_components(graph):
        dups.update(ids[k] for k in sorted(component)[1:])
    return short, dups


# -- a corpus of real files with injected near-duplicates ----------------------------------------


def _stdlibs() -> list[Path]:
    """This interpreter's standard library first, then any other Python 3 one on the machine."""
    own = Path(sysconfig.get_paths()["stdlib"]).resolve()
    found = [own]
    for pattern in (
        "/usr/lib/python3.*",
        "/usr/local/lib/python3.*",
        "/opt/*/lib/python3.*",
        os.path.expanduser("~/.pyenv/versions/*/lib/python3.*"),
    ):
        for p in sorted(glob.glob(pattern)):
            path = Path(p).resolve()
            if (path / "os.py").is_file() and path not in found:
                found.append(path)
    return found


def _renamed(text: str) -> str:
    # The three most frequent long identifiers get new names everywhere.
    names = Counter(
        n
        for n in re.findall(r"\b[A-Za-z_][A-Za-z0-9_]{3,}\b", text)
        if not keyword.iskeyword(n) and n not in dir(builtins)
    )
    for k, (name, _) in enumerate(names.most_common(3)):
        text = re.sub(rf"\b{name}\b", f"renamed_{k}_{name[:3]}", text)
    return text


def _reindented(text: str) -> str:
    return re.sub(r"^( +)", lambda m: " " * (len(m.group(1)) // 2), text, flags=re.M)  # 4 spaces -> 2


def _with_lines(text: str, added: str) -> str:
    lines = text.splitlines(keepends=True)
    middle = len(lines) // 2
    return "".join(lines[:middle] + [added] + lines[middle:])


LINE = "# Local change: keep in sync with upstream.\n"
BLOCK = (
    '\n\ndef _local_helper(values, scale=2):\n    """Added downstream."""\n    total = 0\n'
    "    for value in values:\n        total += value * scale\n    return total\n\n"
)


def build_corpus() -> list[dict]:
    libs = _stdlibs()
    own = libs[0]
    originals = sorted(p for p in own.glob("*.py") if 3_000 <= p.stat().st_size <= 25_000)[::3][:45]
    records: list[dict] = []

    def add(repo: str, path: str, content: str) -> None:
        records.append(
            {
                "content": content,
                "lang": "Python",
                "max_stars_repo_name": repo,
                "max_stars_repo_path": path,
                "max_stars_count": 1,
            }
        )

    texts = {p.name: p.read_text(encoding="utf-8") for p in originals}
    for name, text in texts.items():
        add("python/cpython", f"Lib/{name}", text)
    names = list(texts)
    for k, (kind, change) in enumerate(
        [
            ("renamed", _renamed),
            ("reindented", _reindented),
            ("line", lambda t: _with_lines(t, LINE)),
            ("block", lambda t: _with_lines(t, BLOCK)),
        ]
    ):
        for name in names[k::4][:10]:
            add(f"fork-{kind}/cpython", f"Lib/{name}", change(texts[name]))
    # Generated code: the Windows code pages differ only in their tables.
    for p in sorted(own.glob("encodings/cp125[0-8].py")):
        add("python/cpython", f"Lib/encodings/{p.name}", p.read_text(encoding="utf-8"))
    # The same file from another release, where it changed.
    for lib in libs[1:2]:
        changed = [
            p
            for p in sorted(own.glob("*.py"))
            if 2_000 <= p.stat().st_size <= 40_000
            and (lib / p.name).is_file()
            and (lib / p.name).read_bytes() != p.read_bytes()
        ][:15]
        for p in changed:
            if p.name not in texts:
                add("python/cpython", f"Lib/{p.name}", p.read_text(encoding="utf-8"))
            add(
                f"vendored/{lib.name}-{lib.parent.parent.name}",
                f"Lib/{p.name}",
                (lib / p.name).read_text(encoding="utf-8"),
            )
    add("tiny/repo", "empty.py", "")
    add("tiny/repo", "one.py", "x = 1\n")
    add("copy/repo", f"Lib/{names[0]}", texts[names[0]])  # an exact copy is a near-duplicate too
    random.Random(1234).shuffle(records)  # copies before and after their originals
    return records


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return build_corpus()


@pytest.fixture(scope="module")
def reference(corpus: list[dict]) -> tuple[set[int], set[int]]:
    return reference_dedup_alt([r["content"] for r in corpus])


def _key(r: dict) -> tuple[str, str]:
    return r["max_stars_repo_name"], r["max_stars_repo_path"]


def _side_by_side(corpus: list[dict], ours: set[int], theirs: set[int]) -> str:
    rows = [f"{'santa':>6} {'ref':>4}  record"]
    for i in sorted(ours ^ theirs):
        rows.append(
            f"{'drop' if i in ours else 'keep':>6} {'drop' if i in theirs else 'keep':>4}  {'/'.join(_key(corpus[i]))}"
        )
    return "\n".join(rows)


@pytest.mark.slow
def test_prepare_dedup_alt_removes_what_the_reference_removes(corpus: list[dict], reference, tmp_path: Path) -> None:
    short, dups = reference
    # The corpus holds what the test is about: near-duplicates of every injected kind that the
    # reference removes (the variant or its original, whichever comes later), and variants it
    # keeps beside their original (below 0.7), so that the verdicts are not all one way.
    index = {_key(r): i for i, r in enumerate(corpus)}
    linked, unlinked = Counter(), Counter()
    for i, r in enumerate(corpus):
        if r["max_stars_repo_name"].startswith("fork-"):
            original = index["python/cpython", r["max_stars_repo_path"]]
            (linked if {i, original} & dups else unlinked)[r["max_stars_repo_name"]] += 1
    assert len(linked) == 4 and sum(unlinked.values()) >= 1 and len(dups) >= 30, (linked, unlinked)
    assert {_key(corpus[i]) for i in short} == {("tiny/repo", "empty.py"), ("tiny/repo", "one.py")}

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    out = tmp_path / "out"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "santa.cli",
            "prepare",
            f"input={src}",
            f"output={out}",
            "pipeline.steps=[near_dedup]",
            "pipeline.params.near_dedup.mode=dedup_alt",
            "engine.workers=1",
            "progress=false",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rejects = pq.read_table(sorted((out / "rejects").glob("*.parquet"))).to_pylist()
    assert {r["reject_step"] for r in rejects} == {"near_dedup"}
    removed = {(r["max_stars_repo_name"], r["max_stars_repo_path"]) for r in rejects}
    assert len(index) == len(corpus) == len(set(map(_key, corpus)))
    ours = {index[k] for k in removed}
    assert ours == short | dups, _side_by_side(corpus, ours, short | dups)


def _santa_removed(corpus: list[dict], **params) -> set[int]:
    from santa import registry

    s = registry.get("santa.filters", "near_dedup")(mode="dedup_alt", **params)
    records = [{"content": r["content"], "id": i} for i, r in enumerate(corpus)]
    for r, p in zip(records, s.prepare(records)):
        r["_prepared"] = p
    return set(s.process_corpus(records))


def test_dedup_alt_step_matches_the_reference_and_the_old_tokenization_does_not(corpus: list[dict], reference) -> None:
    short, dups = reference
    ours = _santa_removed(corpus)
    assert ours == short | dups, _side_by_side(corpus, ours, short | dups)
    # santa's earlier tokenization (only the non-empty pieces) is another algorithm: on this
    # corpus it disagrees with the reference, which is what makes the comparison above a test.
    alnum = _santa_removed(corpus, tokens="alnum", hashing="fast")
    assert alnum != short | dups
