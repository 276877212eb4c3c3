"""A unit per task (issue 14): with at least two input files per worker, each worker reads whole
units and writes their data, rejects, annotations, spills and markers itself. The outputs are
those of the batch path (fewer units than that: the driver writes) and of one process; a run that
stops in the middle resumes; a bad line in strict mode and a step's error stop the run with the
same messages as elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_pipeline import (  # noqa: F401
    code,
    crashy_plugin,
    read_records,
    run,
    stack_record,
    write_jsonl,
)
from test_pipeline_golden import synthetic_records
from test_pipeline_scale import crash_corpus

from santa.errors import SantaError
from santa.pipeline import StepSpec
from santa.pipeline.engine import WORK
from santa.pipeline.engines import LocalEngine
from santa.pipeline.spec import PipelineError

STEPS = [
    StepSpec("basic"),
    StepSpec("comments"),
    StepSpec("exact_dedup"),
    StepSpec("near_dedup", {"mode": "stack"}),
    StepSpec("stars", {"missing": "zero"}),
]


def _outputs(res) -> dict:
    """Everything a user reads: kept rows, rejects and annotations (each file's rows in order),
    duplicates, the published file names and the report's counts."""
    out = res.output
    table = lambda kind: {  # noqa: E731
        p.name: [json.dumps(r, sort_keys=True, default=str) for r in pq.read_table(p).to_pylist()]
        for p in sorted((out / kind).glob("*.parquet"))
    }
    return {
        "data": table("data"),
        "rejects": table("rejects"),
        "annotations": table("annotations") if (out / "annotations").exists() else {},
        "duplicates": pq.read_table(out / "duplicates.parquet").to_pylist(),
        "steps": [{k: v for k, v in s.items() if k != "corpus_seconds"} for s in res.report["steps"]],
    }


def test_a_unit_per_task_keeps_what_batches_and_one_process_keep(tmp_path: Path) -> None:
    assert LocalEngine(2, 8).whole_units(6) and not LocalEngine(4, 8).whole_units(6)
    recs = synthetic_records(360, seed=11)
    inputs = tmp_path / "in"
    for k in range(6):  # duplicates across units; a corrupt line in one
        write_jsonl(inputs / f"part{k}.jsonl", recs[k::6])
    (inputs / "part3.jsonl").write_text((inputs / "part3.jsonl").read_text() + "{not json\n")
    units = run(tmp_path, inputs, steps=STEPS, out="units", workers=2, batch_size=8)
    batched = run(tmp_path, inputs, steps=STEPS, out="batches", workers=4, batch_size=8)
    one = run(tmp_path, inputs, steps=STEPS, out="one", workers=1, batch_size=8)
    got = _outputs(units)
    assert got == _outputs(batched) == _outputs(one)
    assert len(got["data"]) == 6 and sum(map(len, got["data"].values())) > 50
    assert got["duplicates"] and any("malformed JSON" in r for rows in got["rejects"].values() for r in rows)


def test_a_run_stopped_in_a_unit_task_resumes(tmp_path: Path, crashy_plugin) -> None:  # noqa: F811
    # Unit 4 crashes in the last segment, after the corpus step.
    inputs, flag = crash_corpus(tmp_path, units=6, crash=4)
    steps = [StepSpec("basic"), StepSpec("exact_dedup"), StepSpec("crashy", {"flag": str(flag)}), StepSpec("comments")]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path, inputs, steps=steps, workers=2, batch_size=8)
    units = next((tmp_path / "out" / WORK).glob("*/units"))
    names = {p.name for p in units.iterdir()}
    assert {f"s0-u{u:05d}.done.json" for u in range(6)} <= names
    # The crashed unit left no marker and no file; wherever a worker wrote a unit's marker it
    # also deleted that unit's input spill, and only there.
    assert not any(n.startswith("s1-u00004.") for n in names) and "s0-u00004.spill" in names
    for u in range(6):
        assert (f"s1-u{u:05d}.done.json" in names) == (f"s0-u{u:05d}.spill" not in names)
    assert not [n for n in names if "tmp" in n]

    flag.unlink()
    resumed = run(tmp_path, inputs, steps=steps, workers=2, batch_size=8)
    fresh = run(tmp_path, inputs, steps=steps, out="fresh", batch_size=8)
    assert resumed.report["resumed_units"] >= 6
    assert _outputs(resumed) == _outputs(fresh)


def test_errors_in_unit_tasks_read_as_elsewhere(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    for k in range(4):
        write_jsonl(inputs / f"part{k}.jsonl", [stack_record(code(10 * k + i), path=f"{k}/{i}.py") for i in range(3)])
    bad = inputs / "part2.jsonl"
    bad.write_text(json.dumps(stack_record(code(99))) + "\n{not json\n")
    with pytest.raises(PipelineError, match=rf"{bad}:2: malformed JSON line .*strict"):
        run(tmp_path, inputs, strict=True, workers=2)
    assert not (tmp_path / "out" / "_SUCCESS").exists() and not (tmp_path / "out" / "data").exists()

    nostars = write_jsonl(inputs / "part2.jsonl", [stack_record(code(1), stars=None, repo="local/x", path="m.py")])
    with pytest.raises(SantaError, match=rf"step 'stars' on {nostars}:1 .*local/x/m.py .*missing=zero"):
        run(tmp_path, inputs, steps=[StepSpec("stars")], out="out2", workers=2)
