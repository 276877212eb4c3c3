"""The pipeline engine (local, in-process and with worker processes): accounting, outputs in The
Stack's format, rejects and duplicates, corrupt input, strict mode, resume after a crash, reuse,
third-party steps, source trees and zips."""

from __future__ import annotations

import gzip
import json
import os
import textwrap
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from santa import registry
from santa.assets import ASSETS as SHARED_DATA  # the benchmark data shipped in the package
from santa.data.records import read_records
from santa.errors import SantaError
from santa.filters.base import StepContext
from santa.pipeline import PipelineConfig, StepSpec, run_pipeline
from santa.pipeline.engine import WORK
from santa.pipeline.parquet import read_dataset
from santa.pipeline.spec import PipelineError


def stack_record(
    content: str, lang: str = "Python", repo: str = "org/repo", path: str = "a.py", stars=7, **extra
) -> dict:
    return {
        "content": content,
        "lang": lang,
        "max_stars_repo_name": repo,
        "max_stars_repo_path": path,
        "max_stars_count": stars,
        "hexsha": f"{abs(hash(content)) % 10**12:012d}",
        **extra,
    }


def write_jsonl(path: Path, records: list[dict], gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def code(i: int, lang: str = "Python") -> str:
    words = " ".join(f"name{(i * 7 + k) % 97}_{i}" for k in range(40))
    if lang == "Python":
        return f'"""Module {i}: what it does."""\n\ndef f{i}(x):\n    # add {i}\n    names = "{words}"\n    return x + {i}\n'
    return f'/** Class {i}. */\nclass C{i} {{\n  // field {i}\n  String f = "{words}";\n}}\n'


def mixed_records() -> list[dict]:
    recs = [stack_record(code(i), path=f"p{i}.py") for i in range(12)]
    recs += [stack_record(code(i, "Java"), lang="Java", path=f"C{i}.java") for i in range(12)]
    recs.append(stack_record("x = '" + "a" * 2000 + "'\n", path="long.py"))  # basic: line > 1000
    recs.append(stack_record("x = 1\ny = 2\n" * 30, path="nocomment.py"))  # comments: ratio 0
    recs.append(stack_record(code(3), repo="fork/repo", path="copy.py"))  # exact duplicate of p3.py
    recs.append(stack_record(code(4).replace("add 4", "add four"), repo="fork/repo", path="near.py"))  # near dup
    recs[0]["id"] = "source-id-0"  # a source field named like santa's own: written back unchanged
    return recs


STEPS = [StepSpec("basic"), StepSpec("comments"), StepSpec("exact_dedup"), StepSpec("near_dedup", {"mode": "stack"})]


def run(tmp_path: Path, inputs, steps=STEPS, out: str = "out", **kw):
    cfg = PipelineConfig(
        input=inputs, output=tmp_path / out, steps=steps, workers=kw.pop("workers", 1), progress=False, **kw
    )
    return run_pipeline(cfg)


def test_accounting_outputs_rejects_and_duplicates(tmp_path: Path) -> None:
    src = mixed_records()
    a = write_jsonl(tmp_path / "in" / "a.jsonl", src[:15])
    b = write_jsonl(tmp_path / "in" / "b.jsonl.gz", src[15:], gz=True)
    res = run(tmp_path, tmp_path / "in")
    rep = res.report
    names = [s["name"] for s in rep["steps"]]
    assert names == ["input", "basic", "comments", "exact_dedup", "near_dedup"]
    for s in rep["steps"]:  # kept + rejected = read, per step and language (checked by the engine too)
        assert s["kept"]["files"] + s["rejected"]["files"] == s["read"]["files"]
        for lang, e in s["by_lang"].items():
            assert e["kept"]["files"] + e["rejected"]["files"] == e["read"]["files"], (s["name"], lang)
    by = {s["name"]: s for s in rep["steps"]}
    assert by["input"]["read"]["files"] == len(src)
    assert (by["basic"]["rejected"]["files"], by["comments"]["rejected"]["files"]) == (1, 1)
    assert by["exact_dedup"]["rejected"]["files"] == 1 and by["near_dedup"]["rejected"]["files"] == 1
    assert set(by["comments"]["by_lang"]) == {"Python", "Java"}

    clean = list(read_records(res.data_files))
    rejects = read_dataset(sorted((tmp_path / "out" / "rejects").glob("*.parquet"))).to_pylist()
    assert len(clean) + len(rejects) == len(src)
    assert {r["max_stars_repo_path"] for r in clean}.isdisjoint({r["max_stars_repo_path"] for r in rejects})
    # The Stack's fields, untouched, so train.py (and anyone) reads the clean shards as input.
    first = next(r for r in clean if r["max_stars_repo_path"] == "p0.py")
    assert first == src[0]
    assert {"reject_step", "reject_stat", "reject_reason", "reject_where", "reject_id", "content"} <= set(rejects[0])
    long = next(r for r in rejects if r["max_stars_repo_path"] == "long.py")
    assert long["reject_step"] == "basic" and long["reject_stat"] == 2006 and long["reject_where"] == f"{b}:10"
    assert next(r for r in rejects if r["max_stars_repo_path"] == "nocomment.py")["reject_step"] == "comments"
    dups = pq.read_table(tmp_path / "out" / "duplicates.parquet").to_pylist()
    assert {(d["step"], d["path"], d["duplicate_of_path"]) for d in dups} == {
        ("exact_dedup", "copy.py", "p3.py"),
        ("near_dedup", "near.py", "p4.py"),
    }
    assert (tmp_path / "out" / "plots" / "comments.png").stat().st_size > 1000
    # Each input file's clean shard is found again (train.py keeps the demo's splits this way).
    assert {r["max_stars_repo_path"] for r in read_records(res.unit_data_files(b))} <= {
        r["max_stars_repo_path"] for r in src[15:]
    }
    success = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    assert success["key"] == rep["key"] and "report.json" in success["files"]
    assert not (tmp_path / "out" / WORK).exists()


def test_rerun_reuses_and_a_changed_parameter_recomputes(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", mixed_records())
    first = run(tmp_path, tmp_path / "in.jsonl")
    assert not first.reused
    assert run(tmp_path, tmp_path / "in.jsonl").reused
    steps = [StepSpec("basic", {"max_line_length": 5000, "max_mean_line_length": 5000}), *STEPS[1:]]
    again = run(tmp_path, tmp_path / "in.jsonl", steps=steps)
    assert not again.reused and again.report["key"] != first.report["key"]
    assert again.report["steps"][1]["rejected"]["files"] == 0


def test_corrupt_inputs_are_counted_with_file_and_line(tmp_path: Path) -> None:
    good = [stack_record(code(i), path=f"g{i}.py") for i in range(3)]
    lines = [
        json.dumps(good[0]).encode(),
        b'{"content": "broken',
        b'{"content": "bad \xff\xfe utf8", "lang": "Python"}',
        b"[1, 2, 3]",
        json.dumps({"lang": "Python", "max_stars_repo_path": "nocontent.py"}).encode(),
        json.dumps(stack_record("binary\x00\x01\x02", path="blob.py")).encode(),
        json.dumps(stack_record("x = 1  # big\n" * 4_000_000, path="huge.py")).encode(),  # ~52 MB
        json.dumps(stack_record("lone \ud800 surrogate", path="sur.py")).encode(),
        json.dumps(good[1]).encode(),
    ]
    bad = tmp_path / "in" / "bad.jsonl"
    bad.parent.mkdir()
    bad.write_bytes(b"\n".join(lines) + b"\n")
    whole = gzip.compress("".join(json.dumps(r) + "\n" for r in good * 50).encode())
    (tmp_path / "in" / "truncated.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    pq.write_table(pa.table({"content": [code(5), None], "lang": ["Python", "Python"]}), tmp_path / "in" / "p.parquet")
    rep = run(tmp_path, tmp_path / "in", steps=[StepSpec("basic")]).report
    errors = "\n".join(rep["input_errors"]["examples"])
    assert f"{bad}:2: malformed JSON line" in errors
    assert f"{bad}:3: invalid UTF-8" in errors
    assert f"{bad}:4: expected a JSON object" in errors
    assert f"{bad}:5: missing content" in errors
    assert f"{bad}:6: binary content" in errors
    assert f"{bad}:7:" in errors and "> max_file_bytes 1,000,000" in errors
    assert f"{bad}:8: invalid UTF-8 in content" in errors
    assert "truncated.jsonl.gz:" in errors and "unreadable after line" in errors
    assert "p.parquet: row 2: missing content" in errors
    inp = rep["steps"][0]
    assert rep["input_errors"]["count"] == inp["rejected"]["files"] == 9
    # Good records: 2 in bad.jsonl, 1 in the Parquet file, those of truncated.jsonl.gz before the cut.
    assert inp["kept"]["files"] >= 4 and rep["steps"][-1]["kept"]["files"] == inp["kept"]["files"]


def test_strict_mode_stops_at_the_first_bad_line_and_publishes_nothing(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps(stack_record(code(1))) + "\n{not json\n")
    with pytest.raises(PipelineError, match=rf"{f}:2: malformed JSON line .*strict"):
        run(tmp_path, f, strict=True)
    assert not (tmp_path / "out" / "_SUCCESS").exists() and not (tmp_path / "out" / "data").exists()


def test_missing_stars_metadata_stops_the_run_naming_the_record(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "in.jsonl", [stack_record(code(1), stars=None, repo="local/x", path="m.py")])
    with pytest.raises(SantaError, match=rf"step 'stars' on {f}:1 .*local/x/m.py .*missing=zero"):
        run(tmp_path, f, steps=[StepSpec("stars")])
    res = run(tmp_path, f, steps=[StepSpec("stars", {"missing": "zero"})], out="out2")
    assert res.report["steps"][1]["rejected"]["files"] == 1


def test_one_plugin_runs_twice_under_two_names(tmp_path: Path) -> None:
    """dedup_alt's way: near_dedup as The Stack ran it, then again under its own name with other
    parameters, on what the first kept; each has its own counts, rejects and cache key."""
    from santa.pipeline.config import step_specs

    f = write_jsonl(tmp_path / "in.jsonl", mixed_records())
    specs = step_specs(
        {"steps": ["basic", "strict"], "params": {"strict": {"plugin": "basic", "min_alnum_fraction": 0.8}}}
    )
    assert specs[1] == StepSpec("strict", {"min_alnum_fraction": 0.8}, "basic")
    res = run(tmp_path, f, steps=specs)
    by = {s["name"]: s for s in res.report["steps"]}
    assert by["strict"]["plugin"] == "basic" and "plugin" not in by["basic"]
    assert by["strict"]["params"]["min_alnum_fraction"] == 0.8 and by["basic"]["params"]["min_alnum_fraction"] == 0.25
    assert by["strict"]["read"]["files"] == by["basic"]["kept"]["files"] and by["strict"]["rejected"]["files"] > 0
    rejects = read_dataset(sorted((res.output / "rejects").glob("*.parquet")))
    assert set(rejects.column("reject_step").to_pylist()) == {"basic", "strict"}
    # Another plugin under the same name and parameters is another pipeline (another key).
    other = run(tmp_path, f, steps=[specs[0], StepSpec("strict", {}, "comments")], out="out2")
    assert other.report["key"] != res.report["key"] and not other.reused


def test_bad_configuration_is_a_clear_error(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "in.jsonl", [stack_record(code(1))])
    with pytest.raises(registry.UnknownPluginError, match="valid names: .*near_dedup"):
        run(tmp_path, f, steps=[StepSpec("no_such_step")])
    with pytest.raises(PipelineError, match="bad parameters"):
        run(tmp_path, f, steps=[StepSpec("basic", {"nope": 1})])
    with pytest.raises(PipelineError, match="more than once"):
        run(tmp_path, f, steps=[StepSpec("basic"), StepSpec("basic")])
    with pytest.raises(registry.UnknownPluginError, match=r"To run a step twice.*params.<that name>.plugin"):
        run(tmp_path, f, steps=[StepSpec("basic"), StepSpec("basic_again")])
    with pytest.raises(PipelineError, match=r"step 'again': pipeline.params.again.plugin='no_such_step'"):
        run(tmp_path, f, steps=[StepSpec("again", {}, "no_such_step")])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(PipelineError, match="did not write"):
        run(tmp_path, f, out="mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


PLUGIN = '''
import os
import time

from santa.filters.base import Decision, RecordStep


class Crashy(RecordStep):
    """Keeps everything; while the flag file exists, crashes on a record containing CRASH, and
    waits on one containing WAIT (saying so in <flag>.waiting)."""

    def __init__(self, flag: str = ""):
        self.flag = flag

    def params(self):
        return {}  # the flag is not part of the output's identity

    def process(self, batch):
        for r in batch:
            if "CRASH" in r["content"] and os.path.exists(self.flag):
                raise RuntimeError("simulated crash")
            if "WAIT" in r["content"] and os.path.exists(self.flag):
                open(self.flag + ".waiting", "w").close()
            while "WAIT" in r["content"] and os.path.exists(self.flag):
                time.sleep(0.05)
        return [Decision(True, float(len(r["content"]))) for r in batch]
'''


def install_step(site: Path, name: str, cls: str, source: str) -> Path:
    """A third-party step installed the way pip would, under ``site``: module ``santa_<name>``
    and a dist-info whose entry point registers ``cls`` as step ``name``."""
    info = site / f"santa_{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (site / f"santa_{name}.py").write_text(textwrap.dedent(source))
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: santa-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[santa.filters]\n{name} = santa_{name}:{cls}\n")
    return site


@pytest.fixture
def crashy_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A third-party step, installed the way pip would: a module and a dist-info with entry points."""
    site = install_step(tmp_path / "site", "crashy", "Crashy", PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield
    registry.refresh()


def test_an_interrupted_run_resumes_and_gives_the_same_outputs(tmp_path: Path, crashy_plugin) -> None:
    assert "crashy" in registry.names("santa.filters")
    flag = tmp_path / "crash-now"
    flag.write_text("")
    inputs = tmp_path / "in"
    for k in range(3):
        recs = [
            stack_record(code(10 * k + i) + ("# CRASH\n" if k == 2 and i == 1 else ""), path=f"{k}/{i}.py")
            for i in range(4)
        ]
        write_jsonl(inputs / f"part{k}.jsonl", recs + [stack_record(code(10 * k), repo="dup", path=f"{k}/dup.py")])
    steps = [StepSpec("basic"), StepSpec("exact_dedup"), StepSpec("crashy", {"flag": str(flag)}), StepSpec("comments")]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path, inputs, steps=steps)
    out = tmp_path / "out"
    assert not (out / "_SUCCESS").exists() and not (out / "data").exists() and not (out / "report.json").exists()
    done = sorted(p.name for p in out.glob(f"{WORK}/*/units/*.done.json"))
    assert "s1-u00000.done.json" in done and "s1-u00002.done.json" not in done
    assert not list(out.glob(f"{WORK}/*/units/.*tmp*"))  # no half-written files left behind

    flag.unlink()
    resumed = run(tmp_path, inputs, steps=steps)
    fresh = run(tmp_path, inputs, steps=steps, out="fresh")
    assert resumed.report["resumed_units"] >= 4  # segment 0 (3 units) + the finished units of segment 1
    assert fresh.report["resumed_units"] == 0
    rows = lambda r: sorted(json.dumps(x, sort_keys=True) for x in read_records(r.data_files))  # noqa: E731
    assert rows(resumed) == rows(fresh)
    assert [s["kept"] for s in resumed.report["steps"]] == [s["kept"] for s in fresh.report["steps"]]


def test_source_trees_and_zip_archives_are_inputs(tmp_path: Path) -> None:
    tree = tmp_path / "proj"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "mod.py").write_text(code(1))
    (tree / "Main.java").write_text(code(2, "Java"))
    (tree / "README.md").write_text("not code")
    (tree / "bad.py").write_bytes(b"\xff\xfe not utf-8")
    with zipfile.ZipFile(tmp_path / "lib.zip", "w") as zf:
        zf.writestr("lib/util.js", "// helper\nfunction util(a, b) { return a + b; } // sum of two values a and b\n")
    res = run(tmp_path, [tree, tmp_path / "lib.zip"], steps=[StepSpec("basic")])
    clean = {r["max_stars_repo_path"]: r for r in read_records(res.data_files)}
    assert set(clean) == {"pkg/mod.py", "Main.java", "lib/util.js"}
    assert clean["lib/util.js"]["lang"] == "JavaScript" and clean["pkg/mod.py"]["max_stars_repo_name"] == "proj"
    assert any(f"{tree / 'bad.py'}: invalid UTF-8" in e for e in res.report["input_errors"]["examples"])


def test_worker_processes_keep_the_same_files_as_one_process(tmp_path: Path) -> None:
    recs = mixed_records() * 3  # exact duplicates across batches and units
    for k in range(3):
        write_jsonl(tmp_path / "in" / f"{k}.jsonl", recs[k::3])
    steps = [StepSpec("basic"), StepSpec("comments"), StepSpec("near_dedup", {"mode": "dedup_alt"})]
    one = run(tmp_path, tmp_path / "in", steps=steps, out="one", workers=1)
    two = run(tmp_path, tmp_path / "in", steps=steps, out="two", workers=2, batch_size=4)
    ids = lambda r: [
        x["reject_id"]
        for x in sorted(
            read_dataset(sorted((r.output / "rejects").glob("*.parquet"))).to_pylist(), key=lambda x: x["reject_id"]
        )
    ]  # noqa: E731
    assert ids(one) == ids(two)
    assert [pq.read_table(f).to_pylist() for f in one.data_files] == [
        pq.read_table(f).to_pylist() for f in two.data_files
    ]


def test_forked_and_spawned_workers_keep_the_same_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from santa.pipeline import engines

    recs = mixed_records() * 2
    for k in range(2):
        write_jsonl(tmp_path / "in" / f"{k}.jsonl", recs[k::2])
    steps = [
        StepSpec("basic"),
        StepSpec("exact_dedup"),
        StepSpec("comments"),
        StepSpec("near_dedup", {"mode": "dedup_alt"}),
    ]
    forked = run(tmp_path, tmp_path / "in", steps=steps, out="fork", workers=2, batch_size=4)
    monkeypatch.setattr(engines, "_single_threaded", lambda: False)  # as if the driver ran threads
    spawned = run(tmp_path, tmp_path / "in", steps=steps, out="spawn", workers=2, batch_size=4)
    untimed = lambda r: [{k: v for k, v in s.items() if k != "corpus_seconds"} for s in r.report["steps"]]  # noqa: E731
    assert untimed(forked) == untimed(spawned)
    assert [pq.read_table(f).to_pylist() for f in forked.data_files] == [
        pq.read_table(f).to_pylist() for f in spawned.data_files
    ]


def test_workers_are_forked_only_from_a_process_without_threads() -> None:
    import subprocess
    import sys

    # A fresh interpreter: this one may hold Arrow's thread pools from earlier tests.
    script = textwrap.dedent("""
        import threading
        import pyarrow  # starts jemalloc's background thread, which is fork-safe
        from santa.pipeline.engines import _single_threaded
        assert _single_threaded()
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        assert not _single_threaded()
        stop.set()
        t.join()
        import time  # join() returns before the kernel has removed the thread's task
        deadline = time.monotonic() + 10
        while not _single_threaded() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _single_threaded()
    """)
    # OpenBLAS's pool (numpy, under pyarrow) is what `santa prepare` disables; here only the
    # detection of threads is under test.
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    # `santa prepare` keeps numpy's OpenBLAS from starting its thread pool, whatever the
    # environment says about threads, so that its workers can be forked.
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    script = "import santa.pipeline.cli, numpy; from santa.pipeline.engines import _single_threaded; assert _single_threaded()"
    subprocess.run([sys.executable, "-c", script], check=True, env=env)


def test_a_run_leaves_no_thread_behind(tmp_path: Path) -> None:
    """Arrow's thread pools (threaded Parquet or JSON reads) would make every later run in the
    same process spawn its workers instead of forking them."""
    import subprocess
    import sys

    write_jsonl(tmp_path / "in.jsonl", mixed_records())
    script = textwrap.dedent(f"""
        from pathlib import Path
        from santa.pipeline import PipelineConfig, StepSpec, run_pipeline
        from santa.pipeline.engines import _single_threaded
        steps = [StepSpec("basic"), StepSpec("exact_dedup"), StepSpec("near_dedup", {{"mode": "dedup_alt"}}), StepSpec("comments")]
        for k in range(2):
            assert _single_threaded(), k
            cfg = PipelineConfig(input={str(tmp_path / "in.jsonl")!r}, output=Path({str(tmp_path)!r}) / f"out{{k}}",
                                 steps=steps, workers=2, batch_size=4, progress=False)
            run_pipeline(cfg)
        assert _single_threaded()
    """)
    # No OpenBLAS pool (as under `santa prepare`): only the threads a run itself leaves count.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_histograms_are_pngs_with_round_ticks(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from santa.pipeline.plots import histogram, nice_ticks

    assert nice_ticks(-0.05, 1.05) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 3150) == [0, 1000, 2000, 3000]
    assert nice_ticks(2.0, 2.0) == [2.0]
    per_lang = {"Python": np.linspace(0, 1, 500), "Java": np.zeros(3), "Rust": np.array([0.5])}
    histogram(tmp_path / "h.png", per_lang, title="t", xlabel="x", lines=(0.01, 0.8))
    histogram(tmp_path / "one.png", {"Python": np.array([3.0])}, title="t", xlabel="x")
    for name in ("h.png", "one.png"):
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG" and img.size == (700, 400)


def test_pii_runs_like_any_record_step(tmp_path: Path) -> None:
    pytest.importorskip("santa.filters.pii")
    f = write_jsonl(tmp_path / "in.jsonl", [stack_record(code(1) + "# contact: jane.doe@corp-mail.com\n")])
    res = run(tmp_path, f, steps=[StepSpec("pii"), StepSpec("basic")])
    (clean,) = list(read_records(res.data_files))
    assert "jane.doe@corp-mail.com" not in clean["content"]
    notes = read_dataset(sorted((tmp_path / "out" / "annotations").glob("*.parquet"))).to_pylist()
    assert notes and notes[0]["step"] == "pii" and "jane.doe" not in notes[0]["details"]


@pytest.mark.skipif(not (SHARED_DATA / "multipl-e_8b88bd5").is_dir(), reason="no ../shared/data")
def test_decontamination_in_the_pipeline(tmp_path: Path) -> None:
    mbpp = json.loads((SHARED_DATA / "multipl-e_8b88bd5/datasets/sanitized-mbpp.json").read_text())
    row = next(r for r in mbpp if r["task_id"] == 11)
    f = write_jsonl(
        tmp_path / "in.jsonl", [stack_record(code(1)), stack_record("# solution\n" + row["code"], path="s.py")]
    )
    res = run(tmp_path, f, steps=[StepSpec("decontaminate")], context=StepContext(data_dirs=[SHARED_DATA]))
    (rej,) = read_dataset(sorted((tmp_path / "out" / "rejects").glob("*.parquet"))).to_pylist()
    assert rej["max_stars_repo_path"] == "s.py" and "MBPP/11 code" in rej["reject_reason"]
