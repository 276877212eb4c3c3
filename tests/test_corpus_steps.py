"""Corpus steps' work where the data is (issue 14): near_dedup's corpus-wide part run as tasks on
the engine's workers (spill parts read by the tasks, band keys grouped per partition, clusters
checked per batch) gives the same decisions as in this process and as a plain re-implementation
of the algorithm, on either engine; a third-party corpus step that only iterates still works."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from rich.console import Console

from santa.errors import SantaError
from santa.filters import near_dedup as nd
from santa.filters.base import CorpusStep, DecisionTable, ListParts, Record
from santa.filters.near_dedup import NearDedup, tokens
from santa.pipeline.engine import _corpus_decisions
from santa.pipeline.engines import LocalEngine
from santa.pipeline.inputs import ID_SHIFT
from santa.pipeline.plan import Segment
from santa.pipeline.spill import SpilledRecords, spill_parts, write_spill_part

VOCAB = [f"name{k}" for k in range(600)] + ["if", "for", "return", "self", "x", "y"]


def _text(rng: np.random.Generator, words: int) -> str:
    return " ".join(rng.choice(VOCAB, words)) + f" u{rng.integers(1 << 40)}"


def _edit(rng: np.random.Generator, text: str, changes: int) -> str:
    words = text.split()
    for _ in range(changes):
        words[int(rng.integers(len(words)))] = f"edit{rng.integers(1 << 30)}"
    return " ".join(words)


def _corpus(seed: int = 0, units: int = 3, per_unit: int = 120) -> list[list[Record]]:
    """Records of several input files: distinct files, near copies (a few words changed) of files
    of other units and of their own, chains (a copy of a copy), exact copies and tiny files."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    for _ in range(units * per_unit):
        r = rng.random()
        if texts and r < 0.12:
            texts.append(_edit(rng, texts[int(rng.integers(len(texts)))], int(rng.integers(1, 6))))
        elif texts and r < 0.15:
            texts.append(texts[int(rng.integers(len(texts)))])
        elif r < 0.19:
            texts.append(" ".join(rng.choice(VOCAB, int(rng.integers(1, 9)))))  # under 10 tokens
        else:
            texts.append(_text(rng, int(rng.integers(40, 400))))
    # Shuffled across the units, so that copies land in other units and parts.
    order = rng.permutation(len(texts))
    out = []
    for u in range(units):
        out.append(
            [
                {
                    "id": (u << ID_SHIFT) | i,
                    "_where": f"u{u}:{i}",
                    "content": texts[order[u * per_unit + i]],
                    "lang": "Java",
                    "repo": f"r{u}",
                    "path": f"f{i}.java",
                }
                for i in range(per_unit)
            ]
        )
    return out


def _spill(root: Path, step: NearDedup, units: list[list[Record]], batch: int = 16) -> list[Path]:
    for recs in units:
        for k in range(0, len(recs), batch):
            chunk = [dict(r) for r in recs[k : k + batch]]
            for r, p in zip(chunk, step.prepare(chunk)):
                r["_prepared"] = p
            write_spill_part(root, 0, chunk)
    return [p for d in sorted(root.glob("*.spill")) for p in spill_parts(d)]


def _prepared(step: NearDedup, units: list[list[Record]]) -> list[Record]:
    recs = [dict(r) for u in units for r in u]
    for r, p in zip(recs, step.prepare(recs)):
        r["_prepared"] = p
    return recs


def _rows(table: DecisionTable) -> list[dict]:
    return table.table.select(["id", "stat", "reason", "duplicate_of", "component_size", "similarity"]).to_pylist()


def _reference(step: NearDedup, records: list[Record]) -> dict[int, tuple[int | None, float]]:
    """The algorithm written out plainly: buckets of (band, band hash) in a dict, networkx's
    components, then per component (ids in order) the Jaccard check over sets of token strings,
    or dedup_alt's first-id-kept estimate. {dropped id: (duplicate_of or None, stat)}."""
    graph = nx.Graph()
    buckets: dict[tuple[int, int], list[int]] = {}
    out: dict[int, tuple[int | None, float]] = {}
    sig_of = {}
    for r in records:
        n, sig = r["_prepared"]
        if sig is None:
            if step.small == "drop":
                out[r["id"]] = (None, float(n))
            continue
        sig_of[r["id"]] = np.frombuffer(sig, dtype=np.uint32)
        for b, h in enumerate(step.band_hashes(sig_of[r["id"]]).tolist()):
            buckets.setdefault((b, h), []).append(r["id"])
    for ids in buckets.values():
        graph.add_edges_from(itertools.pairwise(ids))
    content = {r["id"]: r["content"] for r in records}
    for comp in nx.connected_components(graph):
        cl = sorted(comp)
        if not step.jaccard_check:
            for rid in cl[1:]:
                out[rid] = (cl[0], round(float(np.mean(sig_of[rid] == sig_of[cl[0]])), 4))
            continue
        kept: list[tuple[int, set[str]]] = []
        for rid in cl:
            mine = set(tokens(content[rid]))
            for k, theirs in kept:
                j = len(mine & theirs) / len(mine | theirs)
                if j >= step.threshold:
                    out[rid] = (k, round(j, 4))
                    break
            else:
                kept.append((rid, mine))
    return out


@pytest.fixture
def small_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several partitions and several cluster batches even on a small corpus."""
    monkeypatch.setattr(nd, "_PARTITION_ROWS", 512)
    monkeypatch.setattr(nd, "_BATCH_VALUES", 600)


@pytest.mark.parametrize("mode", ["stack", "dedup_alt"])
def test_near_dedup_in_the_workers_decides_as_in_process_and_as_the_plain_algorithm(
    tmp_path: Path, mode: str, small_tasks: None
) -> None:
    step = NearDedup(mode=mode)
    units = _corpus(seed=1 if mode == "stack" else 2)
    records = _prepared(step, units)
    in_process = step.process_corpus(records)
    want = _reference(step, records)
    got = {r["id"]: (r["duplicate_of"], r["stat"]) for r in _rows(in_process)}
    assert got == want
    # Enough for the test to mean something: near copies across units, and a chain.
    assert sum(d is not None for d, _ in want.values()) >= 20
    assert len({rid >> ID_SHIFT for rid, (d, _) in want.items() if d is not None and d >> ID_SHIFT != rid >> ID_SHIFT})
    # Parts of one list: the same code path, cut elsewhere.
    assert _rows(step.process_corpus(ListParts(records, part_rows=7))) == _rows(in_process)
    spills = _spill(tmp_path / "spill", step, units)
    assert len(spills) > 6
    for workers in (1, 2):
        engine = LocalEngine(workers, 16)
        try:
            spilled = SpilledRecords(spills, content=False, scratch=tmp_path, engine=engine, task_rows=50)
            assert len(spilled.parts()) > 3
            assert _rows(step.process_corpus(spilled)) == _rows(in_process), workers
        finally:
            engine.close()
    # Scratch files are gone once the step is done.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spill"]


def test_an_iterator_of_records_is_taken_whole(small_tasks: None) -> None:
    step = NearDedup(mode="stack")
    records = _prepared(step, _corpus(seed=3, units=2, per_unit=60))
    assert _rows(step.process_corpus(iter(records))) == _rows(step.process_corpus(records))


def _fail(x: int) -> int:
    if x == 3:
        raise SantaError("record 3 is bad")
    return x * x


def test_local_engine_map_keeps_the_order_and_the_users_error() -> None:
    for workers in (1, 2):
        engine = LocalEngine(workers, 8)
        try:
            assert list(engine.map(_fail, [5, 1, 4, 2])) == [25, 1, 16, 4]
            with pytest.raises(SantaError, match="record 3 is bad"):
                list(engine.map(_fail, range(10)))
        finally:
            engine.close()


class _LongestPerRepo(CorpusStep):
    """A third-party corpus step that knows nothing of parts or tasks: it iterates."""

    def __init__(self, content: bool) -> None:
        self.reads_content = content  # type: ignore[misc]
        self.name = "longest"

    def prepare(self, batch: list[Record]) -> list[int]:
        return [len(r["content"]) for r in batch]

    def process_corpus(self, records: Iterable[Record]) -> dict[int, object]:
        from santa.filters.base import Decision

        best: dict[str, tuple[int, int]] = {}
        seen = []
        for r in records:
            if self.reads_content:
                assert len(r["content"]) == r["_prepared"]
            seen.append(r["id"])
            if r["repo"] not in best or r["_prepared"] > best[r["repo"]][0]:
                best[r["repo"]] = (r["_prepared"], r["id"])
        keep = {i for _, i in best.values()}
        return {i: Decision(i in keep, reason="" if i in keep else "not the longest") for i in seen}


@pytest.mark.parametrize("content", [False, True])
def test_a_third_party_corpus_step_that_only_iterates_still_works(tmp_path: Path, content: bool) -> None:
    units = _corpus(seed=4, units=2, per_unit=40)
    step = _LongestPerRepo(content)
    for recs in units:
        for k in range(0, len(recs), 16):
            chunk = [dict(r) for r in recs[k : k + 16]]
            for r, p in zip(chunk, step.prepare(chunk)):
                r["_prepared"] = p
            write_spill_part(tmp_path / "units", 0, chunk)
    spills = [p for d in sorted((tmp_path / "units").glob("*.spill")) for p in spill_parts(d)]
    engine = LocalEngine(2, 16)
    try:
        _, table, _ = _corpus_decisions(
            tmp_path, Segment(0, None, [], "longest"), step, spills, Console(quiet=True), engine
        )
    finally:
        engine.close()
    records = [r for u in units for r in u]
    longest = {
        repo: max((r for r in records if r["repo"] == repo), key=lambda r: (len(r["content"]), -r["id"]))["id"]
        for repo in {r["repo"] for r in records}
    }
    assert sorted(table) == sorted(r["id"] for r in records if r["id"] != longest[r["repo"]])
    assert {table[i].reason for i in table} == {"not the longest"}


def test_exact_dedup_in_the_workers_keeps_the_first_copy(tmp_path: Path) -> None:
    from santa.filters.exact_dedup import ExactDedup

    step = ExactDedup()
    units = _corpus(seed=5, units=3, per_unit=80)
    records = [r for u in units for r in u]
    first: dict[str, int] = {}
    for r in records:
        first.setdefault(r["content"], r["id"])
    want = {r["id"]: first[r["content"]] for r in records if first[r["content"]] != r["id"]}
    assert len(want) >= 5
    in_process = step.process_corpus([dict(r) for r in records])  # prepared on the way
    assert {r["id"]: r["duplicate_of"] for r in _rows(in_process)} == want
    spills = []
    for recs in units:
        for k in range(0, len(recs), 16):
            chunk = [dict(r) for r in recs[k : k + 16]]
            for r, p in zip(chunk, step.prepare(chunk)):
                r["_prepared"] = p
            spills.append(write_spill_part(tmp_path, 0, chunk))
    engine = LocalEngine(2, 16)
    try:
        spilled = SpilledRecords(spills, content=False, scratch=tmp_path, engine=engine, task_rows=40)
        assert _rows(step.process_corpus(spilled)) == _rows(in_process)
    finally:
        engine.close()


@pytest.mark.slow
def test_near_dedup_as_ray_tasks_decides_as_in_process(tmp_path: Path, small_tasks: None) -> None:
    pytest.importorskip("ray")
    from santa.pipeline.engines import RayEngine

    step = NearDedup(mode="stack")
    units = _corpus(seed=6, units=2, per_unit=100)
    want = _rows(step.process_corpus(_prepared(step, units)))
    assert len(want) >= 10
    spills = _spill(tmp_path / "spill", step, units)
    engine = RayEngine(None, 2, 16)
    try:
        spilled = SpilledRecords(spills, content=False, scratch=tmp_path, engine=engine, task_rows=50)
        assert _rows(step.process_corpus(spilled)) == want
        # A user's error comes back as itself, not in Ray's wrapper (the task's function must be
        # importable on the workers: santa's own).
        with pytest.raises(SantaError, match="mode must be one of"):
            list(engine.map(NearDedup, ["stack", "no such mode"]))
    finally:
        engine.close()
