"""`santa prepare` stopped by a signal (a scheduler's SIGTERM, Ctrl-C, a closed terminal, SIGKILL):
it keeps every unit of work its workers finished, leaves no process behind, says how to resume,
and the same command then finishes with the outputs of a run that was never stopped.

A third-party step (test_pipeline's, installed as pip would, with an entry point, as step
``gate``) holds one input file's task in its worker until a flag file goes away, so that the signal always lands mid-run, whatever the
machine's speed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from test_pipeline import PLUGIN, code, install_step, read_records, stack_record, write_jsonl

from santa.pipeline.engine import WORK

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gate(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """The gate step's site directory (on PYTHONPATH for the subprocess), its flag, and an input
    of 6 files (3 units per worker: a task per file) whose last holds the waiting record."""
    site = install_step(tmp_path / "site", "gate", "Crashy", PLUGIN)
    flag = tmp_path / "hold"
    inputs = tmp_path / "in"
    for k in range(6):
        recs = [
            stack_record(code(10 * k + i) + ("# WAIT\n" if k == 5 and i == 2 else ""), path=f"{k}/{i}.py")
            for i in range(5)
        ]
        write_jsonl(inputs / f"part{k}.jsonl", recs + [stack_record(code(10 * k), repo="dup", path=f"{k}/dup.py")])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return env, flag, inputs


def _args(inputs: Path, out: Path, flag: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "santa.cli",
        "prepare",
        f"input={inputs}",
        f"output={out}",
        "pipeline.steps=[basic,exact_dedup,gate,comments]",
        f"pipeline.params.gate.flag={flag}",
        "progress=false",
        *extra,
    ]


def _five_past_the_gate(out: Path) -> Callable[[], bool]:
    """Segment 1 (gate, comments) has finished five of the six files; the sixth waits."""
    return lambda: len(list(out.glob(f"{WORK}/*/units/s1-u*.done.json"))) >= 5


def _stop_midway(
    args: list[str], env: dict[str, str], sig: signal.Signals, ready: Callable[[], bool]
) -> tuple[int, str, list]:
    """Start the run, wait until ``ready()`` (the gate holds a task), send ``sig`` to the driver;
    its exit status, stderr, and the processes it had started."""
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    try:
        while not ready():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the run stalled before the gate"
            time.sleep(0.05)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # the workers (or Ray's processes) that must not outlive the driver
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err, children


def test_a_signal_stops_a_run_whose_driver_reads_the_input(
    gate: tuple[dict[str, str], Path, Path], tmp_path: Path
) -> None:
    """One input file: the driver reads it and sends batches (workers busy with results in flight,
    some waiting in the pipes); stopped while the gate holds a batch, nothing is left running."""
    env, flag, inputs = gate
    one = tmp_path / "one.jsonl"
    one.write_text("".join(p.read_text() for p in sorted(inputs.glob("*.jsonl"))))
    out = tmp_path / "out"
    args = _args(one, out, flag, "engine.workers=2", "engine.batch_size=2")
    flag.write_text("")
    code_, err, children = _stop_midway(args, env, signal.SIGTERM, Path(f"{flag}.waiting").exists)
    assert code_ == 128 + signal.SIGTERM and "Traceback" not in err, err[-3000:]
    assert "santa prepare stopped by SIGTERM: 1 unit(s) of work finished" in " ".join(err.split()), err[-3000:]
    assert len(children) == 2 and not _gone(children)
    flag.unlink()
    resumed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(_rows(out)) == 6 * 5


def _gone(procs: list, timeout: float = 30) -> list:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def _rows(out: Path) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in read_records(out / "data"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_workers_keeps_their_units_and_the_rerun_resumes(
    gate: tuple[dict[str, str], Path, Path], tmp_path: Path, sig: signal.Signals
) -> None:
    env, flag, inputs = gate
    out = tmp_path / "out"
    args = _args(inputs, out, flag, "engine.workers=2")
    flag.write_text("")
    code_, err, children = _stop_midway(args, env, sig, _five_past_the_gate(out))
    assert code_ == 128 + sig, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    said = " ".join(err.split())
    assert f"santa prepare stopped by {sig.name}" in said and "run the same command to resume" in said, said
    # 6 files through segment 0 and 5 through segment 1, kept; no worker left waiting for tasks.
    assert f"{6 + 5} unit(s) of work finished" in said, said
    assert not _gone(children)
    assert not (out / "_SUCCESS").exists() and not (out / "data").exists()
    flag.unlink()
    resumed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["resumed_units"] == 6 + 5
    fresh = subprocess.run(
        _args(inputs, tmp_path / "fresh", flag, "engine.workers=2"), cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert _rows(out) == _rows(tmp_path / "fresh") and len(_rows(out)) == 6 * 5
    assert not (out / WORK).exists()


def test_a_killed_driver_takes_its_workers_with_it(gate: tuple[dict[str, str], Path, Path], tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, a scheduler's last word) runs no handler: the kernel ends the
    workers (PR_SET_PDEATHSIG), which would otherwise wait for tasks forever."""
    env, flag, inputs = gate
    out = tmp_path / "out"
    flag.write_text("")
    code_, _, children = _stop_midway(
        _args(inputs, out, flag, "engine.workers=2"), env, signal.SIGKILL, _five_past_the_gate(out)
    )
    assert code_ == -signal.SIGKILL
    assert len(children) == 2 and not _gone(children)
    flag.unlink()
    resumed = subprocess.run(
        _args(inputs, out, flag, "engine.workers=2"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((out / "report.json").read_text())["resumed_units"] == 6 + 5


def test_sigterm_stops_a_ray_run_cleanly(gate: tuple[dict[str, str], Path, Path], tmp_path: Path) -> None:
    """``ray.init`` installs a C handler that dumps a stack and kills the driver on SIGTERM: the
    engine takes the signal back, kills its actors and stops the local Ray."""
    pytest.importorskip("ray")
    env, flag, inputs = gate
    out = tmp_path / "out"
    flag.write_text("")
    args = _args(inputs, out, flag, "engine=ray", "engine.num_cpus=2")
    code_, err, children = _stop_midway(args, env, signal.SIGTERM, _five_past_the_gate(out))
    assert code_ == 128 + signal.SIGTERM, err[-3000:]
    assert "SIGTERM received" not in err and "Traceback" not in err, err[-3000:]
    kept = len(list(out.glob(f"{WORK}/*/units/*.done.json")))
    assert f"santa prepare stopped by SIGTERM: {kept} unit(s) of work finished" in " ".join(err.split())
    assert not _gone(children)  # the actors and every Ray daemon
    flag.unlink()
    resumed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((out / "report.json").read_text())["resumed_units"] == kept == 6 + 5


SECOND = """
import time
from santa.signals import stop_on_signals, deferred, Stopped
with stop_on_signals():
    try:
        with deferred():
            print("deferred", flush=True)
            time.sleep(3)
            print("deferred done", flush=True)
    except Stopped as exc:
        print("raised after the deferred block:", exc, flush=True)
        time.sleep(60)  # cleaning up: a second signal must not wait for this
"""


def test_deferred_holds_a_signal_and_a_second_signal_ends_the_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SECOND], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "deferred"
    proc.send_signal(signal.SIGTERM)  # held until the block ends
    assert proc.stdout.readline().strip() == "deferred done"
    assert proc.stdout.readline().strip() == "raised after the deferred block: stopped by SIGTERM"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == -signal.SIGINT
