"""How the pipeline scales with the corpus (issue 14): a synthetic corpus of N files, `santa
prepare` run on it in a fresh process, and what that process and its workers used.

    python benchmarks/bench_scale.py [--files 20000 80000] [--pipeline final] [--format jsonl|parquet]
                                     [--workers N] [--engine local [ray]] [--santa TREE ...] [--quick] [--json]
    python benchmarks/bench_scale.py --fixed K [--engine local ray] [--workers N]

The corpus is made from the source files of this machine (the Python standard library, a JDK's
src.zip, JavaScript under /usr/lib/node_modules, whichever exist): each file is three random
windows of lines of three source files of one language (~10 KB on average, log-normal sizes),
so that files are distinct and look like code; then ~5 % are near copies of an earlier file
(a few lines changed, dropped or added) and ~1 % exact copies. Shards of 2,000 files, cached under
cache/bench/scale/ (generation is seeded; --regenerate rebuilds).

Per N it prints: wall time; CPU of the driver and of its workers together (getrusage of the
children this process waited for: the driver, which waits for its worker pool; or, when larger,
the sum over the process tree polled, which counts Ray's workers that no parent waits for) and MB/s per core
(input MB / that CPU); the driver's own CPU and its share; the driver's peak RSS (VmHWM); the
peak memory of the whole process tree (sum of PSS, which counts pages forked workers share with
the driver once); the peak size of the scratch directory <output>/.santa-work and its ratio to
the input. With a local Ray, the tree's peak is also split into santa's processes (the driver and
its actors) and Ray's own daemons (GCS, raylet, dashboard and its agent, the runtime-env agent,
the monitors), which a local Ray starts beside them. Memory and disk are polled every 0.2 s, so short peaks may be missed. The machine's
load average is printed with each run: on a shared machine, compare runs made together.

--fixed K measures, K times in a fresh process, what each engine costs whatever the corpus:
importing it, starting it (its worker processes; a local Ray with one actor per CPU, ready for a
task), stopping it, and, started and idle, the PSS of the driver, of each worker or actor and of
Ray's daemons.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import math
import os
import random
import resource
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARD_FILES = 2000
_EXT = {".py": "Python", ".java": "Java", ".js": "JavaScript"}


# -- the corpus -----------------------------------------------------------------------------------


def source_pool(max_per_lang: int = 6000, seed: int = 0) -> dict[str, list[str]]:
    """Texts of source files on this machine, per language (at most ``max_per_lang`` each)."""
    rng = random.Random(seed)
    pool: dict[str, list[str]] = {lang: [] for lang in _EXT.values()}

    def take(lang: str, data: bytes) -> None:
        if 500 <= len(data) <= 200_000 and b"\x00" not in data:
            try:
                pool[lang].append(data.decode("utf-8"))
            except UnicodeDecodeError:
                pass

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    py = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
    js = sorted(Path("/usr/lib/node_modules").rglob("*.js")) if Path("/usr/lib/node_modules").is_dir() else []
    for lang, files in (("Python", py), ("JavaScript", js)):
        for p in rng.sample(files, min(len(files), max_per_lang)):
            try:
                take(lang, p.read_bytes())
            except OSError:
                pass
    for z in sorted(glob.glob("/usr/lib/jvm/*/src.zip") + glob.glob("/usr/lib/jvm/*/lib/src.zip")):
        try:
            with zipfile.ZipFile(z) as zf:
                names = [n for n in zf.namelist() if n.endswith(".java")]
                for n in rng.sample(names, min(len(names), max_per_lang)):
                    take("Java", zf.read(n))
            break
        except (OSError, zipfile.BadZipFile):
            continue
    return {lang: texts for lang, texts in pool.items() if texts}


def synthetic_files(
    n: int, pool: dict[str, list[str]], seed: int = 14, mean_bytes: int = 13_500
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    lines = {lang: [t.split("\n") for t in texts] for lang, texts in pool.items()}
    langs = sorted(lines)
    out: list[dict[str, Any]] = []
    sigma = 1.0
    # log-normal; windows are cut short by small source files, so this aims above the ~10 KB wanted
    mu = math.log(mean_bytes) - sigma * sigma / 2
    for i in range(n):
        r = rng.random()
        if r < 0.01 and out:
            src = rng.choice(out)
            lang, content = src["lang"], src["content"]
        elif r < 0.06 and out:
            src = rng.choice(out)
            lang = src["lang"]
            ls = src["content"].split("\n")
            for _ in range(max(1, len(ls) // rng.choice([50, 30, 20]))):
                k = rng.randrange(len(ls))
                op = rng.random()
                if op < 0.4:
                    ls[k] = ls[k] + "  // edited" if lang != "Python" else ls[k] + "  # edited"
                elif op < 0.7 and len(ls) > 2:
                    del ls[k]
                else:
                    ls.insert(k, rng.choice(rng.choice(lines[lang])))
            content = "\n".join(ls)
        else:
            lang = rng.choice(langs)
            target = min(200_000, max(300, int(rng.lognormvariate(mu, sigma))))
            parts = []
            for _ in range(3):
                src = rng.choice(lines[lang])
                # a window of about a third of the target, from a random line on
                k = rng.randrange(max(1, len(src) - 3))
                size, start = 0, k
                while size < target // 3:
                    size += len(src[k]) + 1
                    k = (k + 1) % len(src)
                    if k == start:
                        break
                parts.append("\n".join(src[start:k] if k > start else src[start:] + src[:k]))
            content = "\n".join(parts) + "\n"
        ext = {"Python": ".py", "Java": ".java", "JavaScript": ".js"}[lang]
        out.append(
            {
                "content": content,
                "lang": lang,
                "max_stars_repo_name": f"org{i % 997}/repo{i % 13}",
                "max_stars_repo_path": f"src/f{i:07d}{ext}",
                "max_stars_count": rng.choice([0, 2, 5, 40]),
                "hexsha": f"{i:040x}",
            }
        )
    return out


def build_corpus(n: int, fmt: str, regenerate: bool = False) -> Path:
    out = ROOT / "cache" / "bench" / "scale" / f"{n}-{fmt}"
    done = out / "_DONE"
    if done.exists() and not regenerate:
        return out
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    records = synthetic_files(n, source_pool())
    for k in range(0, n, SHARD_FILES):
        shard = records[k : k + SHARD_FILES]
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(
                pa.Table.from_pylist(shard), out / f"part-{k // SHARD_FILES:05d}.parquet", compression="zstd"
            )
        else:
            data = "".join(json.dumps(r) + "\n" for r in shard).encode()
            (out / f"part-{k // SHARD_FILES:05d}.jsonl.gz").write_bytes(gzip.compress(data, compresslevel=1, mtime=0))
    done.write_text(json.dumps({"files": n, "bytes": sum(len(r["content"].encode()) for r in records)}))
    return out


# -- measuring one run -----------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    import psutil

    try:
        p = psutil.Process(pid)
        return [pid] + [c.pid for c in p.children(recursive=True)]
    except psutil.Error:
        return [pid]


_RAY_OURS = ("ray::_RayWorker", "ray::IDLE")  # santa's actors (a worker Ray started idle becomes one)


def _ray_daemon(pid: int) -> bool:
    """Whether ``pid`` is one of Ray's own per-node processes (GCS, raylet, dashboard, agents,
    monitors), which a local Ray starts beside santa's driver and actors."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if cmd.startswith(_RAY_OURS):
        return False
    return cmd.startswith("ray::") or "site-packages/ray/" in cmd


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


class Poller(threading.Thread):
    def __init__(self, pid: int, scratch: Path, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.scratch, self.every = pid, scratch, every
        self.driver_hwm_kb = 0
        self.driver_cpu = 0.0
        self.tree_peak_kb = 0
        self.ours_peak_kb = 0  # the tree less Ray's own daemons: the driver and its workers or actors
        self.daemons_kb = 0
        self.scratch_peak = 0
        # CPU of every process of the tree as last seen: processes that their parent does not
        # wait for (Ray's workers) are missing from getrusage's children.
        self.tree_cpu: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            hwm = _status_kb(self.pid, "VmHWM")
            cpu = _proc_cpu(self.pid)
            if hwm is None or cpu is None:
                break
            self.driver_hwm_kb, self.driver_cpu = max(self.driver_hwm_kb, hwm), cpu
            tree = _tree(self.pid)
            pss = {p: _pss_kb(p) for p in tree}
            daemons = sum(kb for p, kb in pss.items() if _ray_daemon(p))
            self.tree_peak_kb = max(self.tree_peak_kb, sum(pss.values()))
            self.ours_peak_kb = max(self.ours_peak_kb, sum(pss.values()) - daemons)
            self.daemons_kb = max(self.daemons_kb, daemons)
            for p in tree:
                self.tree_cpu[p] = max(self.tree_cpu.get(p, 0.0), _proc_cpu(p) or 0.0)
            self.scratch_peak = max(self.scratch_peak, _du(self.scratch))
            self.stop.wait(self.every)


def run_prepare(corpus: Path, pipeline: str, workers: int | None, engine: str, santa: Path = ROOT) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=ROOT / "cache" / "bench") as tmp:
        out = Path(tmp) / "out"
        cmd = [
            sys.executable,
            "-m",
            "santa",
            "prepare",
            f"input={corpus}",
            f"output={out}",
            f"pipeline={pipeline}",
            "progress=false",
            f"engine={engine}",
        ] + ([f"engine.workers={workers}"] if workers else [])
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(santa) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=santa, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        poller = Poller(proc.pid, out / ".santa-work")
        poller.start()
        _, err = proc.communicate()
        wall = time.perf_counter() - t0
        poller.stop.set()
        poller.join()
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
        report = json.loads((out / "report.json").read_text())
    cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    # The larger: polled, a process's last 0.2 s may be missed; waited for, Ray's workers are.
    cpu = max(cpu, sum(poller.tree_cpu.values()))
    mb = report["steps"][0]["read"]["bytes"] / 1e6
    return {
        "files": report["steps"][0]["read"]["files"],
        "mb": round(mb, 1),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "mb_s_per_core": round(mb / cpu, 2),
        "driver_cpu_s": round(poller.driver_cpu, 1),
        "driver_share": round(poller.driver_cpu / cpu, 3),
        "driver_peak_rss_mb": round(poller.driver_hwm_kb / 1024, 1),
        "tree_peak_pss_mb": round(poller.tree_peak_kb / 1024, 1),
        "santa_peak_pss_mb": round(poller.ours_peak_kb / 1024, 1),
        "ray_daemons_pss_mb": round(poller.daemons_kb / 1024, 1),
        "scratch_peak_mb": round(poller.scratch_peak / 1e6, 1),
        "scratch_ratio": round(poller.scratch_peak / 1e6 / mb, 2),
        "kept": report["totals"]["kept"]["files"],
        "corpus_s": {s["name"]: s["corpus_seconds"] for s in report["steps"] if "corpus_seconds" in s},
        "load": [round(x, 1) for x in load0],
        "load_after": [round(x, 1) for x in os.getloadavg()],
    }


_FIXED = """
import json, os, sys, time
t0 = time.perf_counter()
from santa.pipeline.engines import LocalEngine, RayEngine
if sys.argv[1] == "ray":
    import ray
t1 = time.perf_counter()
workers = int(sys.argv[2]) if len(sys.argv) > 2 else None
engine = RayEngine(None, workers, 1000) if sys.argv[1] == "ray" else LocalEngine(workers, 1000)
engine.start()
if sys.argv[1] == "ray":
    ray.get([a.call.remote(os.getpid) for a in engine._actors])
t2 = time.perf_counter()
time.sleep(2)
print(json.dumps({"import_s": t1 - t0, "start_s": t2 - t1, "pid": os.getpid()}), flush=True)
sys.stdin.readline()  # the parent has measured the processes
t3 = time.perf_counter()
engine.close()
print(json.dumps({"stop_s": time.perf_counter() - t3}), flush=True)
"""


def engine_fixed(engine: str, workers: int | None, santa: Path = ROOT) -> dict[str, Any]:
    """What an engine costs santa whatever the corpus: the seconds to import it, to start it
    (its workers, or a local Ray with one actor per CPU, ready to take a task) and to stop it;
    and, once started and idle, the memory (PSS) of the driver, of each worker or actor and of
    Ray's own daemons."""
    env = {**os.environ, "PYTHONPATH": str(santa) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-c", _FIXED, engine] + ([str(workers)] if workers else [])
    proc = subprocess.Popen(cmd, cwd=santa, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    started = json.loads(proc.stdout.readline())
    tree = _tree(started["pid"])
    pss = {p: _pss_kb(p) for p in tree}
    daemons = [p for p in tree if _ray_daemon(p)]
    workers_ = [p for p in tree if p != started["pid"] and p not in daemons]
    proc.stdin.write("\n")
    proc.stdin.flush()
    stopped = json.loads(proc.stdout.readline())
    proc.wait()
    return {
        "engine": engine,
        "import_s": round(started["import_s"], 2),
        "start_s": round(started["start_s"], 2),
        "stop_s": round(stopped["stop_s"], 2),
        "driver_pss_mb": round(pss[started["pid"]] / 1024, 1),
        "workers": len(workers_),
        "worker_pss_mb": round(sum(pss[p] for p in workers_) / 1024 / max(1, len(workers_)), 1),
        "daemons": len(daemons),
        "daemons_pss_mb": round(sum(pss[p] for p in daemons) / 1024, 1),
        "total_pss_mb": round(sum(pss.values()) / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, nargs="+", default=[20_000, 80_000])
    ap.add_argument("--quick", action="store_true", help="2,000 and 8,000 files (a check that it runs)")
    ap.add_argument("--pipeline", default="final")
    ap.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument(
        "--engine", choices=["local", "ray"], nargs="+", default=["local"], help="several: interleaved on each corpus"
    )
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument(
        "--santa",
        type=Path,
        action="append",
        help="a santa source tree to run (e.g. an older commit's `git archive`); repeat to interleave "
        "several on each corpus (default: this checkout)",
    )
    ap.add_argument(
        "--fixed",
        type=int,
        default=0,
        metavar="K",
        help="only measure, K times, what each --engine costs whatever the corpus (start, stop, idle memory)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    if args.fixed:
        for _ in range(args.fixed):
            for tree, engine in [(t, e) for t in args.santa or [ROOT] for e in args.engine]:
                row = {"santa": str(tree), **engine_fixed(engine, args.workers, tree.resolve())}
                rows.append(row)
                if not args.json:
                    print(
                        f"[{tree} {engine}] import {row['import_s']} s, start {row['start_s']} s "
                        f"({row['workers']} workers ready), stop {row['stop_s']} s; idle (PSS): "
                        f"{row['total_pss_mb']} MB in all, driver {row['driver_pss_mb']} MB, "
                        f"{row['worker_pss_mb']} MB per worker"
                        + (f", Ray's {row['daemons']} daemons {row['daemons_pss_mb']} MB" if row["daemons"] else ""),
                        flush=True,
                    )
        if args.json:
            print(json.dumps(rows, indent=1))
        return 0
    for n in [2_000, 8_000] if args.quick else args.files:
        corpus = build_corpus(n, args.format, args.regenerate)
        for tree, engine in [(t, e) for t in args.santa or [ROOT] for e in args.engine]:
            row = {
                "n": n,
                "santa": str(tree),
                "engine": engine,
                **run_prepare(corpus, args.pipeline, args.workers, engine, tree.resolve()),
            }
            rows.append(row)
            if not args.json:
                print(
                    f"[{tree} {engine}] {n:>8,} files {row['mb']:>7} MB: {row['wall_s']:>6} s wall, {row['cpu_s']:>6} s CPU, "
                    f"{row['mb_s_per_core']:>5} MB/s per core; driver {row['driver_cpu_s']} s CPU "
                    f"({100 * row['driver_share']:.0f} %), peak RSS {row['driver_peak_rss_mb']} MB; "
                    f"tree peak {row['tree_peak_pss_mb']} MB (PSS"
                    + (
                        f"; santa's processes {row['santa_peak_pss_mb']} MB, Ray's daemons {row['ray_daemons_pss_mb']} MB"
                        if row["ray_daemons_pss_mb"]
                        else ""
                    )
                    + f"); scratch peak {row['scratch_peak_mb']} MB "
                    f"({row['scratch_ratio']}x input); kept {row['kept']:,}; corpus steps {row['corpus_s']}; "
                    f"load {row['load']} -> {row['load_after']}",
                    flush=True,
                )
    for tree, engine in [(t, e) for t in args.santa or [ROOT] for e in args.engine]:
        mine = [r for r in rows if r.get("santa") == str(tree) and r.get("engine") == engine]
        if len(mine) < 2:
            continue
        a, b = mine[0], mine[-1]
        growth = (b["driver_peak_rss_mb"] - a["driver_peak_rss_mb"]) * 1024 * 1024 / (b["n"] - a["n"])
        if args.json:
            rows.append({"santa": str(tree), "engine": engine, "driver_rss_bytes_per_file": round(growth)})
        else:
            print(
                f"[{tree} {engine}] driver peak RSS grows by {growth:,.0f} bytes per file between {a['n']:,} and {b['n']:,} files"
            )
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
