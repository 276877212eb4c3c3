"""Issue 14's engine parts at test size: spills are compressed and dropped once the next segment
has read them (and a run that stopped still resumes), corpus-step decisions are Arrow columns
(looked up, saved, mapped back), and the corpus steps give the same decisions without the
records' content in the driver."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_pipeline import (  # noqa: F401
    PLUGIN,
    code,
    crashy_plugin,
    read_records,
    run,
    stack_record,
    write_jsonl,
)
from test_pipeline_golden import synthetic_records

from santa.filters.base import Decision, DecisionTable
from santa.pipeline import StepSpec
from santa.pipeline.engine import WORK
from santa.pipeline.inputs import pack_record, unpack_record
from santa.pipeline.spill import spill_parts


def test_decision_table_round_trips_a_steps_decisions(tmp_path: Path) -> None:
    given = {
        9: Decision(False, 1.0, "exact duplicate of id 2", details={"duplicate_of": 2}),
        4: Decision(False, 0.5, "odd", details={"note": "x", "spans": [[1, 2]]}),
        7: Decision(True, 0.1),  # kept: not stored
        3: Decision(False, None, "no stat"),
    }
    t = DecisionTable.from_mapping(given)
    assert list(t) == [3, 4, 9] and len(t) == 3 and 7 not in t and 9 in t
    for rid in (3, 4, 9):
        assert t[rid] == given[rid]
    assert t.get(7) is None and t.get(100) is None
    with pytest.raises(KeyError):
        t[7]
    located = t.with_locations(np.array([2, 3, 9]), ["r2", "r3", "r9"], ["p2", "p3", "p9"])
    located.save(tmp_path / "d.arrow")
    back = DecisionTable.load(tmp_path / "d.arrow")
    assert [back[r] for r in back] == [given[r] for r in (3, 4, 9)]
    ids, of, stat = back.duplicates()
    assert ids.tolist() == [9] and of.tolist() == [2] and stat.tolist() == [1.0]
    row = back.table.to_pylist()[2]
    assert (row["repo"], row["path"], row["duplicate_of_repo"], row["duplicate_of_path"]) == ("r9", "p9", "r2", "p2")
    assert back.table.to_pylist()[1]["repo"] is None  # id 4 was not located

    # Columns straight from a step, in any order: the details dict in the order a dedup step writes it.
    cols = DecisionTable.from_columns(
        [8, 5], [0.9, 0.8], ["b", "a"], duplicate_of=[1, 2], component_size=[3, 3], similarity=[0.9, 0.8]
    )
    assert cols[5] == Decision(False, 0.8, "a", details={"duplicate_of": 2, "component_size": 3, "similarity": 0.8})
    assert cols[8].reason == "b"


def _three_corpus_steps(flag: Path) -> list[StepSpec]:
    return [
        StepSpec("basic"),
        StepSpec("exact_dedup"),
        StepSpec("near_dedup", {"mode": "stack"}),
        StepSpec("crashy", {"flag": str(flag)}),
        StepSpec("comments"),
    ]


def crash_corpus(tmp_path: Path, units: int, crash: int) -> tuple[Path, Path]:
    """240 synthetic records in ``units`` input files, unit ``crash`` holding a record that makes
    the crashy step fail while the flag file (made here) exists: (input dir, flag)."""
    flag = tmp_path / "crash-now"
    flag.write_text("")
    recs = synthetic_records(240, seed=3)
    inputs = tmp_path / "in"
    for k in range(units):
        part = recs[k::units]
        if k == crash:
            part[5] = {**part[5], "content": part[5]["content"] + "# CRASH\n"}
        write_jsonl(inputs / f"part{k}.jsonl", part)
    return inputs, flag


def test_spills_are_compressed_dropped_once_read_and_a_stopped_run_resumes(tmp_path: Path, crashy_plugin) -> None:  # noqa: F811
    # The last unit crashes in the last segment, after both corpus steps.
    inputs, flag = crash_corpus(tmp_path, units=3, crash=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path, inputs, steps=_three_corpus_steps(flag), workers=2, batch_size=16)
    units = next((tmp_path / "out" / WORK).glob("*/units"))
    names = {p.name for p in units.iterdir()}
    # Segment 1 is done everywhere: segment 0's spills are gone. In segment 2, a unit's input
    # spill (segment 1's) is gone exactly where its marker is written; the crashed unit keeps it.
    assert not any(n.startswith("s0-") and n.endswith(".spill") for n in names)
    done2 = {u for u in range(3) if f"s2-u{u:05d}.done.json" in names}
    spills1 = {u for u in range(3) if f"s1-u{u:05d}.spill" in names}
    assert 0 in done2 and 2 not in done2 and spills1 == {0, 1, 2} - done2
    # Segment 1's survivors of unit 2 are spilled in parts written by the workers, one per batch
    # (named by the first id, so in input order), each record packed (a compressed pickle: see
    # the test below).
    parts = spill_parts(units / "s1-u00002.spill")
    assert len(parts) > 1 and [p.name for p in parts] == sorted(p.name for p in parts)
    ids, unpacked = [], []
    for part in parts:
        table = pq.read_table(part, columns=["id", "record"])
        ids += table.column("id").to_pylist()
        unpacked += [unpack_record(b) for b in table.column("record").to_pylist()]
    assert len(unpacked) > 40 and [r["id"] for r in unpacked] == ids == sorted(ids)
    assert all(i >> 32 == 2 for i in ids)

    flag.unlink()
    resumed = run(tmp_path, inputs, steps=_three_corpus_steps(flag), workers=2, batch_size=16)
    fresh = run(tmp_path, inputs, steps=_three_corpus_steps(flag), out="fresh")
    assert resumed.report["resumed_units"] == 3 + 3 + len(done2)
    rows = lambda r: sorted(json.dumps(x, sort_keys=True) for x in read_records(r.data_files))
    assert rows(resumed) == rows(fresh)
    dups = lambda r: pq.read_table(r.output / "duplicates.parquet").to_pylist()
    assert dups(resumed) == dups(fresh) and {d["step"] for d in dups(fresh)} == {"exact_dedup", "near_dedup"}
    assert all(d["repo"] and d["path"] and d["duplicate_of_path"] for d in dups(fresh))


def test_spilled_records_are_compressed_about_2x_on_code() -> None:
    import email.message
    import inspect
    import json as json_module

    texts = [inspect.getsource(m) for m in (json_module.decoder, email.message, inspect)]
    for text in texts:
        rec = {"id": 1, "content": text, "lang": "Python", "repo": "cpython", "path": "Lib/x.py", "_where": "x:1"}
        blob = pack_record(rec)
        assert unpack_record(blob) == rec
        assert len(blob) < 0.6 * len(text.encode()), (len(blob), len(text))


def test_keep_work_keeps_the_spills(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [stack_record(code(i), path=f"p{i}.py") for i in range(8)])
    res = run(
        tmp_path,
        tmp_path / "in.jsonl",
        steps=[StepSpec("exact_dedup"), StepSpec("basic")],
        keep_work=True,
        batch_size=3,
    )
    assert len(spill_parts(next((res.output / WORK).glob("*/units/s0-u00000.spill")))) == 3


def test_workers_reading_whole_input_files_keep_the_same_files(tmp_path: Path) -> None:
    """With at least two input files per worker, each worker reads whole files in the segments
    that spill; the files kept, rejected and deduplicated are those of one process reading all."""
    from test_pipeline_golden import run_preset, write_corpus

    corpus = write_corpus(tmp_path / "in", synthetic_records(600, seed=5), shards=6)
    one = run_preset(corpus, tmp_path / "one", "final", workers=1)
    two = run_preset(corpus, tmp_path / "two", "final", workers=2)
    assert one == two
    assert len(one["duplicates"]) > 10 and len(one["kept"]) > 100


def test_vectorised_components_are_networkx_connected_components() -> None:
    import networkx as nx

    from santa.filters.near_dedup import _components

    rng = np.random.default_rng(7)
    for n, m in ((1, 0), (10, 3), (500, 300), (2000, 2500)):
        a, b = rng.integers(0, n, m), rng.integers(0, n, m)
        labels = _components(n, a, b)
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_edges_from(zip(a.tolist(), b.tolist()))
        want = sorted(sorted(c) for c in nx.connected_components(graph))
        got: dict[int, list[int]] = {}
        for node, label in enumerate(labels.tolist()):
            got.setdefault(label, []).append(node)
        assert sorted(got.values()) == want
        assert all(label == min(nodes) for label, nodes in got.items())  # each labelled by its smallest node
