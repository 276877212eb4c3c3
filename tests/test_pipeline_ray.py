"""engine=ray (an actor per CPU) keeps the same files as engine=local: on a local Ray with 2 CPUs
(few input files: batches read by the driver; then a task per file, where a step's user error comes
back as the same clear message), and on a cluster of two nodes joined by its address."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray")

from test_pipeline import code, mixed_records, stack_record, write_jsonl  # noqa: E402

from santa.data.records import read_records  # noqa: E402
from santa.errors import SantaError  # noqa: E402
from santa.pipeline import PipelineConfig, StepSpec, run_pipeline  # noqa: E402
from santa.pipeline.parquet import read_dataset  # noqa: E402


def _run(tmp_path: Path, engine: str, steps: list[StepSpec], out: str) -> object:
    return run_pipeline(
        PipelineConfig(
            input=tmp_path / "in",
            output=tmp_path / out,
            steps=steps,
            engine=engine,
            workers=1 if engine == "local" else None,
            ray_num_cpus=2,
            batch_size=8,
            progress=False,
        )
    )


@pytest.mark.slow
def test_ray_engine_keeps_the_same_files_as_the_local_engine(tmp_path: Path) -> None:
    recs = mixed_records() * 2
    for k in range(3):  # several units, batches that straddle them, duplicates across units
        write_jsonl(tmp_path / "in" / f"{k}.jsonl", recs[k::3] + [stack_record("{broken", path="x")] * (k == 1))
    (tmp_path / "in" / "1.jsonl").write_text((tmp_path / "in" / "1.jsonl").read_text() + "{not json\n")
    steps = [
        StepSpec("basic"),
        StepSpec("comments"),
        StepSpec("exact_dedup"),
        StepSpec("near_dedup", {"mode": "dedup_alt"}),
        StepSpec("stars", {"missing": "zero"}),
    ]
    local = _run(tmp_path, "local", steps, "local")
    ray = _run(tmp_path, "ray", steps, "ray")
    assert ray.report["engine"] == "ray" and local.report["engine"] == "local"
    rows = lambda r: [json.dumps(x, sort_keys=True) for x in read_records(r.data_files)]  # noqa: E731
    assert rows(ray) == rows(local) and rows(local)
    rej = lambda r: sorted(  # noqa: E731
        (x["reject_id"], x["reject_step"], x["reject_reason"])
        for x in read_dataset(sorted((r.output / "rejects").glob("*.parquet"))).to_pylist()
    )
    assert rej(ray) == rej(local)
    strip = lambda r: [{k: v for k, v in s.items() if k != "corpus_seconds"} for s in r.report["steps"]]  # noqa: E731
    assert strip(ray) == strip(local)

    write_jsonl(tmp_path / "in" / "3.jsonl", [stack_record(code(1), stars=None, path="nostars.py")])
    with pytest.raises(SantaError, match="no star count"):
        _run(tmp_path, "ray", [StepSpec("stars")], "ray-error")


@pytest.mark.slow
def test_a_two_node_ray_cluster_keeps_the_local_engines_files(tmp_path: Path) -> None:
    """A Ray cluster of two nodes (a head and a worker node, one CPU each), joined by its address
    as `engine.address=` does: an actor on each node, each reading whole input files and writing
    their outputs under the shared output directory."""
    import ray
    from ray.cluster_utils import Cluster
    from test_pipeline_golden import synthetic_records
    from test_pipeline_units import STEPS, _outputs

    recs = synthetic_records(360, seed=11)
    for k in range(6):  # two input files per CPU of the cluster: a task per file
        write_jsonl(tmp_path / "in" / f"part{k}.jsonl", recs[k::6])
    local = _run(tmp_path, "local", STEPS, "local")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2 and ray.cluster_resources()["CPU"] == 2
        ray.shutdown()
        res = run_pipeline(
            PipelineConfig(
                input=tmp_path / "in",
                output=tmp_path / "cluster",
                steps=STEPS,
                engine="ray",
                ray_address=cluster.address,
                batch_size=8,
                progress=False,
            )
        )
        assert not ray.is_initialized()  # the engine disconnected; the cluster is the user's
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert res.report["engine"] == "ray"
    got = _outputs(res)
    assert got == _outputs(local) and got["duplicates"] and sum(map(len, got["data"].values())) > 50
