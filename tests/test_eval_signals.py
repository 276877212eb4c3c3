"""`python evaluate.py` and `santa generate` under real signals, sent to a real process as a
scheduler (SIGTERM to the process), a terminal (SIGINT to the process group, as Ctrl-C) or the
kernel (SIGKILL) sends them, mid-sampling and mid-execution:

- exit status 128 + the signal and one line saying what was kept and the command that resumes,
  never a traceback;
- no process left behind: every process seen under the evaluator before the signal (the sandbox's
  supervisor, the runs, the programs' own children, the Java compiler's JVM) is gone after it,
  SIGKILL of the evaluator included;
- the caches (generations.jsonl, executions.jsonl) hold only whole lines, and the same command
  resumes from them (nothing finished is redone) to the results of an uninterrupted run;
- nothing left blocks the rerun.

Each waits on what it observes (a cache's lines, a mapped model file), never on a duration."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from conftest import ROOT, tiny_overrides

from santa.data.tokenizer import padded_vocab_size, special_ids, train_tokenizer
from santa.eval.scoring import toolchain_problem
from santa.eval.tasks import (
    BenchmarkDataError,
    HumanEvalPy,
    MultiplEHumanEvalJava,
    MultiplEHumanEvalJs,
    resolve_data_dir,
)
from santa.model import GPT, GPTConfig
from santa.model.hf import export_hf

try:
    DATA = resolve_data_dir(None)
except BenchmarkDataError as exc:  # pragma: no cover - santa ships its data
    pytest.skip(f"benchmark data not found: {exc}", allow_module_level=True)

WAIT = 300.0  # seconds: generous bounds only, never a measurement
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
# What an evaluation directory may hold after an interruption: no temporary file, no lock.
KEPT = {".hydra", "evaluate.log", "generations.jsonl", "executions.jsonl", "samples.jsonl"}


# ------------------------------------------------------------------------------ helpers
class Watched:
    """A command started in its own session (as a shell's job is), with every process seen under
    it recorded while the test waits for it to get somewhere."""

    def __init__(self, cmd: list[str], tmp: Path, cwd: Path = ROOT) -> None:
        self.out_path, self.err_path = tmp / "stdout.txt", tmp / "stderr.txt"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=out, stderr=err, start_new_session=True)
        self.seen: dict[int, psutil.Process] = {}

    def _record(self) -> None:
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.Error:
            pass

    def wait_until(self, ready, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not ready():
            self._record()
            assert self.proc.poll() is None, f"ended before {what}:\n{self.err_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"never got to {what}"
            time.sleep(0.02)
        self._record()

    def send(self, sig: int, times: int = 1) -> None:
        """``times`` > 1: a user pressing Ctrl-C again while the run stops (the gaps only spread
        the signals over the stop; nothing depends on their length)."""
        for i in range(times):
            if i:
                time.sleep(0.05 * i)
            if self.proc.poll() is not None:
                return
            if sig == signal.SIGINT:
                os.killpg(self.proc.pid, sig)  # Ctrl-C: the terminal signals the foreground group
            else:
                self.proc.send_signal(sig)

    def finish(self) -> tuple[int, str]:
        rc = self.proc.wait(timeout=WAIT)
        return rc, self.err_path.read_text()

    def assert_nothing_left(self) -> None:
        """Every process seen under the command is gone (a zombie is gone: it runs nothing)."""
        deadline = time.monotonic() + 60
        alive: list[str] = []
        while time.monotonic() < deadline:
            alive = []
            for p in self.seen.values():
                try:
                    if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                        alive.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
                except psutil.NoSuchProcess:
                    pass
            if not alive:
                return
            time.sleep(0.1)
        for p in self.seen.values():  # do not leave them to the next test
            try:
                p.kill()
            except psutil.Error:
                pass
        raise AssertionError(f"left behind: {alive}")


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def assert_whole_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path.name} ends in a torn line"
    recs = [json.loads(line) for line in data.decode().splitlines()]
    assert all("key" in r for r in recs)
    return recs


def assert_clean_stop(rc: int, err: str, sig: int, cache: str, out: Path) -> str:
    name = signal.Signals(sig).name
    assert rc == 128 + sig, (rc, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert f"{name}: evaluation stopped" in line and str(out / cache) in line, line
    assert "Resume with: " in line and f"output={out}" in line, line
    assert {p.name for p in out.iterdir()} <= KEPT, sorted(p.name for p in out.iterdir())
    return line.split("Resume with: ", 1)[1]


def evaluate_cmd(*overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "evaluate.py"), "progress=false", *overrides]


def run(cmd: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=WAIT)


def comparable(out: Path) -> dict:
    """What two runs of one evaluation must agree on (not when nor how long)."""
    saved = json.loads((out / "results.json").read_text())
    keep = ("task_id", "sample", "prompt", "raw", "completion", "status", "passed", "returncode")
    return {
        "scores": saved["scores"],
        "counts": saved["counts"],
        "samples": [{k: s.get(k) for k in keep} for s in saved["samples"]],
    }


def random_model(out: Path, n_embd: int, n_layer: int, n_positions: int) -> Path:
    """A random santa GPT exported as a GPTBigCode directory, its tokenizer trained on prompts."""
    texts = [p.prompt for p in HumanEvalPy(data_dir=DATA).problems()[:60]]
    tokenizer = train_tokenizer(texts, vocab_size=320)
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=padded_vocab_size(len(tokenizer)),
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=4,
        n_positions=n_positions,
        dropout=0.0,
    )
    eot = special_ids(tokenizer).eot
    return export_hf(GPT(cfg).eval(), out, tokenizer=tokenizer, bos_token_id=eot, eos_token_id=eot)


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny one."""
    return random_model(tmp_path_factory.mktemp("model") / "hf", n_embd=32, n_layer=2, n_positions=256)


# --------------------------------------------------------------------------- mid-sampling
@pytest.mark.slow
def test_sigterm_then_sigint_mid_sampling_keep_every_sample_and_resume_to_the_same_results(
    hf_model: Path, tmp_path: Path
) -> None:
    # Enough work units (one sample each) that a signal after the first few lands mid-sampling.
    common = [
        f"model.path={hf_model}",
        "benchmark=humaneval_py",
        f"data_dir={DATA}",
        "limit=40",
        "generation.n_samples=4",
        "generation.batch_size=1",
        "generation.max_new_tokens=48",
        "generation.temperature=0.8",
    ]
    out = tmp_path / "out"
    gens = out / "generations.jsonl"
    cmd = evaluate_cmd(*common, f"output={out}")
    kept = 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        job = Watched(cmd, tmp_path)
        job.wait_until(lambda want=kept + 2: lines(gens) >= want, "sampling")
        job.send(sig, times=1 if sig == signal.SIGTERM else 3)
        rc, err = job.finish()
        resume = assert_clean_stop(rc, err, sig, "generations.jsonl", out)
        assert "while sampling" in err
        job.assert_nothing_left()
        recs = assert_whole_lines(gens)
        assert kept + 2 <= len(recs) < 160, len(recs)  # kept what it had, then more: not all
        kept = len(recs)
    assert "results.json" not in {p.name for p in out.iterdir()}

    # The command the message gives finishes the run from the cache...
    prog, *args = shlex.split(resume)
    assert prog == "python"
    res = run([sys.executable, *args])
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming: {kept} cached work units reused" in res.stderr
    saved = json.loads((out / "results.json").read_text())
    assert saved["timing"]["cached_units"] == kept and saved["timing"]["generated_rows"] == 160 - kept
    # ...to what one uninterrupted run gives.
    ref = tmp_path / "ref"
    res = run(evaluate_cmd(*common, f"output={ref}"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert comparable(out) == comparable(ref)
    assert len({s["raw"] for s in comparable(ref)["samples"]}) > 40  # really sampled


# -------------------------------------------------------------------------- mid-execution
SLOW_PROGRAMS = {
    # Each completion starts a child of its own that would outlive it, then sleeps: the signal
    # finds runs, and their children, under way.
    "python": (
        "humaneval_py",
        HumanEvalPy,
        "\n    import subprocess, time\n    subprocess.Popen(['sleep', '600'])\n    time.sleep({s})\n    return None\n",
    ),
    "javascript": (
        "multiple_humaneval_js",
        MultiplEHumanEvalJs,
        "\n  require('child_process').spawn('sleep', ['600'], {{detached: true, stdio: 'ignore'}});\n"
        "  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, {ms});\n  return 0;\n}}\n",
    ),
    "java": (
        "multiple_humaneval_java",
        MultiplEHumanEvalJava,
        '\n        try {{ new ProcessBuilder("sleep", "600").start(); Thread.sleep({ms}); }}'
        ' catch (Exception e) {{ }}\n        throw new RuntimeException("slow");',
    ),
}


def slow_samples(language: str, path: Path, n: int) -> tuple[str, Path]:
    benchmark, cls, template = SLOW_PROGRAMS[language]
    with open(path, "w") as fh:
        for i, p in enumerate(cls(data_dir=DATA).problems()[:n]):
            s = 0.4 + 0.2 * (i % 3)
            fh.write(json.dumps({"task_id": p.task_id, "completion": template.format(s=s, ms=int(s * 1000))}) + "\n")
    return benchmark, path


@pytest.mark.slow
@pytest.mark.parametrize(
    "language,sig,times",
    [
        ("python", signal.SIGTERM, 1),
        ("python", signal.SIGTERM, 3),
        ("python", signal.SIGINT, 3),
        ("python", signal.SIGKILL, 1),
        ("javascript", signal.SIGINT, 1),
        ("java", signal.SIGTERM, 1),
    ],
    ids=[
        "python-SIGTERM",
        "python-SIGTERMx3",
        "python-SIGINTx3",
        "python-SIGKILL",
        "javascript-SIGINT",
        "java-SIGTERM",
    ],
)
def test_a_signal_mid_execution_stops_every_sandbox_process_and_the_rerun_resumes(
    language: str, sig: int, times: int, tmp_path: Path
) -> None:
    reason = toolchain_problem(language)
    if reason:
        pytest.skip(f"{language} toolchain missing: {reason}")
    n = 12
    benchmark, samples = slow_samples(language, tmp_path / "samples.jsonl", n)
    common = [f"benchmark={benchmark}", f"samples={samples}", f"limit={n}", f"data_dir={DATA}", "execution.workers=2"]
    out = tmp_path / "out"
    execs = out / "executions.jsonl"
    cmd = evaluate_cmd(*common, f"output={out}")
    job = Watched(cmd, tmp_path)
    job.wait_until(lambda: lines(execs) >= 1, "execution")
    assert len(job.seen) >= 3, job.seen  # the supervisor, runs and their children were seen
    job.send(sig, times)
    rc, err = job.finish()
    if sig == signal.SIGKILL:
        assert rc == -sig  # nothing to say: the kernel ended it; the supervisor must follow
    else:
        assert_clean_stop(rc, err, sig, "executions.jsonl", out)
        assert "while executing programs" in err
    job.assert_nothing_left()
    recs = assert_whole_lines(execs)
    assert 1 <= len(recs) < n

    res = run(cmd)  # the same command again
    assert res.returncode == 0, res.stderr[-3000:]
    after = assert_whole_lines(execs)
    assert after[: len(recs)] == recs and len(after) == n  # the finished ones were not run again
    ref = tmp_path / "ref"
    res = run(evaluate_cmd(*common, f"output={ref}"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert comparable(out) == comparable(ref)
    assert comparable(ref)["counts"] == {"failed": n}  # each ran its whole sleep, then failed


@pytest.mark.parametrize("isolation", ["none", "auto"])
def test_the_supervisor_stops_everything_when_a_result_finds_the_evaluator_gone(isolation: str) -> None:
    # A SIGKILLed evaluator closes both pipes at once; a run that ends before the supervisor
    # reads the EOF on its stdin writes its result into a pipe nobody reads. The supervisor must
    # then stop as on the EOF, killing every process of every run: without a PID namespace
    # (isolation "none", or a kernel that grants none) a crash there left the children of the
    # runs still under way running forever. The read end is closed here to make that order certain.
    from santa.eval.sandbox import Limits, Sandbox

    tag = f"{600 + os.getpid() % 1000}.{len(isolation)}"  # this test's own `sleep` processes
    sb = Sandbox(workers=2, isolation=isolation)
    try:
        slow = f"import subprocess, time\nsubprocess.Popen(['sleep', '{tag}'])\ntime.sleep(60)\n"
        quick = "import time\ntime.sleep(0.5)\n"
        for i, program in enumerate((slow, quick)):
            lim = Limits().resolved("python", 120.0)
            sb._send(
                {"id": i, "language": "python", "program": program, "timeout": 120.0, "limits": lim, "tail_bytes": 64}
            )
        deadline = time.monotonic() + WAIT
        while not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", tag]]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert sb._proc.stdout is not None
        sb._proc.stdout.close()  # nobody reads results any more: the quick run's meets EPIPE
        rc = sb._proc.wait(timeout=WAIT)
    finally:
        sb.close()
    deadline = time.monotonic() + 60
    while left := [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", tag]]:
        if time.monotonic() > deadline:
            for p in left:
                p.kill()
            raise AssertionError(f"left behind: {left}")
        time.sleep(0.1)
    assert rc == 0  # it stopped by itself, cleanly (not on an exception)


@pytest.mark.slow
def test_an_interrupted_run_keeps_its_timestamped_folder_and_the_resume_command_names_it(tmp_path: Path) -> None:
    # No output=: the run's folder is outputs/eval/<date>/<time>/ under the working directory,
    # which a plain rerun would not find again; the message pins it.
    n = 8
    benchmark, samples = slow_samples("python", tmp_path / "samples.jsonl", n)
    cmd = evaluate_cmd(f"benchmark={benchmark}", f"samples={samples}", f"limit={n}", f"data_dir={DATA}")
    found = lambda: sorted((tmp_path / "outputs" / "eval").glob("*/*/executions.jsonl"))  # noqa: E731
    job = Watched(cmd, tmp_path, cwd=tmp_path)
    job.wait_until(lambda: any(lines(f) for f in found()), "execution")
    job.send(signal.SIGTERM)
    rc, err = job.finish()
    [execs] = found()
    out = execs.parent
    resume = assert_clean_stop(rc, err, signal.SIGTERM, "executions.jsonl", out)
    job.assert_nothing_left()
    recs = assert_whole_lines(execs)
    prog, *args = shlex.split(resume)
    assert prog == "python" and args[:-1] == cmd[1:] and args[-1] == f"output={out}"
    res = run([sys.executable, *args], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert found() == [execs] and (out / "results.json").is_file()
    after = assert_whole_lines(execs)
    assert after[: len(recs)] == recs and len(after) == n


def _train_until_its_evaluation_samples(
    tiny_corpus: Path, cache_dir: Path, tmp_path: Path
) -> tuple[Path, Path, Watched]:
    """train.py with an evaluation after training, watched until that evaluation (a child
    evaluate.py) has sampled twice: its run directory, generation cache and the job."""
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        *tiny_overrides(tiny_corpus, cache_dir, run_dir),
        "evaluation.runs.passk.benchmarks=[humaneval_py]",
        'evaluation.runs.passk.overrides=["generation.n_samples=8","generation.batch_size=1",'
        '"generation.max_new_tokens=48","limit=40"]',
    ]
    gens = run_dir / "eval" / "humaneval_py" / "generations.jsonl"
    job = Watched(cmd, tmp_path)
    job.wait_until(lambda: lines(gens) >= 2, "the evaluation's sampling")
    return run_dir, gens, job


@pytest.mark.slow
def test_a_signal_during_the_evaluation_after_training_stops_the_evaluation_too(
    tiny_corpus: Path, cache_dir: Path, tmp_path: Path
) -> None:
    # train.py evaluates its model in a child evaluate.py: a SIGTERM of the training process (a
    # scheduler's) must not leave that child evaluating on its own.
    run_dir, gens, job = _train_until_its_evaluation_samples(tiny_corpus, cache_dir, tmp_path)
    job.send(signal.SIGTERM)
    rc, err = job.finish()
    assert rc == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "SIGTERM: evaluation `passk`" in err and "Resume the evaluation with: python -m santa evaluate" in err
    job.assert_nothing_left()
    assert 2 <= len(assert_whole_lines(gens)) < 320
    record = json.loads((run_dir / "job.json").read_text())
    assert record["state"] == "interrupted" and record["signal"] == "SIGTERM", record
    assert "Resume the evaluation with" in record["error"]


@pytest.mark.slow
def test_a_killed_train_py_does_not_leave_its_evaluation_running(
    tiny_corpus: Path, cache_dir: Path, tmp_path: Path
) -> None:
    # SIGKILL passes nothing on: the kernel sends the evaluation (in its own session) SIGTERM,
    # and it stops as it does on a signal, keeping its caches; nothing writes into the run
    # directory of a job that is gone.
    run_dir, gens, job = _train_until_its_evaluation_samples(tiny_corpus, cache_dir, tmp_path)
    assert any("evaluate" in " ".join(p.cmdline()) for p in job.seen.values() if p.is_running())
    job.send(signal.SIGKILL)
    rc, _ = job.finish()
    assert rc == -signal.SIGKILL
    job.assert_nothing_left()
    assert 2 <= len(assert_whole_lines(gens)) < 320


# ------------------------------------------------------------------------- santa generate
@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random model with a long context, so that a generation runs for a while."""
    return random_model(tmp_path_factory.mktemp("slow_model") / "hf", n_embd=256, n_layer=4, n_positions=4096)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["generate", "infill"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_santa_generate_stops_on_a_signal_with_one_line(
    command: str, sig: int, slow_model: Path, tmp_path: Path
) -> None:
    text = ["--prompt", "def f(x):"] if command == "generate" else ["--prefix", "def f(x):\n", "--suffix", "\n"]
    cmd = [sys.executable, "-m", "santa", command, "--model", str(slow_model), *text, "--max-new-tokens", "4000"]
    job = Watched(cmd, tmp_path)
    proc = psutil.Process(job.proc.pid)
    # Once the weights are mapped, the model is loading or generating: 4,000 tokens take long.
    job.wait_until(lambda: any("safetensors" in m.path for m in proc.memory_maps()), "loading the model")
    job.send(sig)
    rc, err = job.finish()
    assert rc == 128 + sig, (rc, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert signal.Signals(sig).name in line, err[-2000:]
    job.assert_nothing_left()
