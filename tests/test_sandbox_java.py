"""Java through the warm compiler gets the verdicts the per-program path (javac + java in each
run) gives, the compiler's failures fall back to that path, and hostile Java and JavaScript
completions are contained: each fails or times out on its own, the well-behaved programs of the
same batch pass, and nothing of them outlives the batch. No test times anything."""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from pathlib import Path

import pytest

import santa.eval.sandbox as sandbox_mod
from santa.eval.execution import Job, execute
from santa.eval.sandbox import ExecResult, Sandbox, toolchain_problem

JAVA_TIMEOUT = 20.0
# Where a test counts the programs the warm compiler took, a budget no loaded CI machine can run
# past: a fallback there would be correct, but the count would no longer say what it tests.
WARM = {"java_compile_budget": 120.0}


def need(language: str) -> None:
    problem = toolchain_problem(language)
    if problem:
        pytest.skip(f"{language} toolchain missing: {problem}")


def run_all(sb: Sandbox, items: list[tuple[str, str, float, object]]) -> list[ExecResult]:
    got = dict(sb.run_many(items))
    return [got[i] for i in range(len(items))]


def java(body: str, main: str, imports: str = "", extra: str = "") -> str:
    """A MultiPL-E-shaped program: imports, ``class Problem`` with a method and a main."""
    return (
        f"import java.util.*;\nimport org.javatuples.*;\n{imports}class Problem {{\n{body}\n"
        f"    public static void main(String[] args) throws Exception {{\n{main}\n    }}\n}}\n{extra}"
    )


UID_LINE = (
    '        for (String l : java.nio.file.Files.readAllLines(java.nio.file.Paths.get("/proc/self/status")))'
    ' if (l.startsWith("Uid:")) System.out.println("uid " + l.split("\\\\s+")[1]);\n'
    "        System.out.flush();\n"
)

ADD = "    static long add(long a, long b) { return a + b; }"
MIXED = {
    "pass": java(ADD, '        assert add(2L, 3L) == 5L;\n        System.out.println(Pair.with(1, "a"));'),
    "assertion fails": java(
        "    static long add(long a, long b) { return a - b; }", "        assert add(2L, 3L) == 5L;"
    ),
    "compile error": java(
        '    static long add(long a, long b) { return "five"; }', "        assert add(2L, 3L) == 5L;"
    ),
    "missing symbol": java(ADD, "        assert add(2L, 3L) == Helper.FIVE;"),
    "timeout": java(ADD, "        while (args.length == 0) { }"),
    "exception": java(ADD, '        throw new IllegalStateException("boom");'),
    "exit 0 before the tests": java(ADD, "        System.exit(0);\n        assert add(2L, 3L) == 6L;"),
    "exit 3": java(ADD, "        System.exit(3);"),
    "stack overflow": java("    static long down(long n) { return down(n + 1) + 1; }", "        down(0);"),
    "public class, other name": "public class Solution {\n    public static void main(String[] a) {\n"
    '        System.out.println("hi");\n    }\n}\n',
    "null pointer": java("    static String s() { return null; }", "        assert s().length() == 1;"),
    "unchecked warning only": java(
        "    static List raw() { return new ArrayList(); }",
        '        List<String> l = raw();\n        l.add("x");\n        assert l.size() == 1;',
    ),
}
EXPECTED = {
    "pass": "passed",
    "assertion fails": "failed",
    "compile error": "failed",
    "missing symbol": "failed",
    "timeout": "timeout",
    "exception": "failed",
    "exit 0 before the tests": "failed",
    "exit 3": "failed",
    "stack overflow": "failed",
    "public class, other name": "passed",
    "null pointer": "failed",
    "unchecked warning only": "passed",
}


def test_warm_compiler_gives_the_per_program_verdicts() -> None:
    need("java")
    names = list(MIXED)
    items = [("java", MIXED[n], 3.0 if n == "timeout" else JAVA_TIMEOUT, None) for n in names]
    with Sandbox(workers=3, **WARM) as warm_box:
        warm = run_all(warm_box, items)
        stats = dict(warm_box.java_stats)
    with Sandbox(workers=3, java_compiler=False) as cold_box:
        cold = run_all(cold_box, items)
        assert cold_box.java_stats == {"warm": 0, "per-program": len(items)}
    # Every program went through the warm compiler (none fell back to javac in its run).
    assert stats == {"warm": len(items), "per-program": 0}
    for n, w, c in zip(names, warm, cold):
        assert w.status == c.status == EXPECTED[n], (n, w, c)
        assert (w.returncode, w.detail) == (c.returncode, c.detail), (n, w, c)
        assert w.stdout_tail == c.stdout_tail, n
        if c.detail == "compile error":
            # The warm compiler prints javac's diagnostics as the javac command does.
            assert w.stderr_tail == c.stderr_tail, (n, w.stderr_tail, c.stderr_tail)
    by = dict(zip(names, warm))
    assert by["pass"].stdout_tail.strip() == "[1, a]"  # javatuples on the class path of the run
    assert "cannot find symbol" in by["missing symbol"].stderr_tail
    assert "at Problem.down" in by["stack overflow"].stderr_tail  # the tail of its stack trace
    assert "sentinel" in by["exit 0 before the tests"].detail


def test_compiled_classes_stay_with_their_program() -> None:
    # One program of a batch defines a top-level class Helper; another uses Helper without
    # defining it. Were the compiler to share its output (or a class path) between programs, the
    # second would compile against the first's class; it must fail as it does alone.
    need("java")
    defines = java("", "        assert Helper.FIVE == 5;", extra="class Helper { static final int FIVE = 5; }\n")
    uses = java("", "        assert Helper.FIVE == 5;")
    with Sandbox(workers=2, **WARM) as sb:
        a, b, a2 = run_all(sb, [("java", p, JAVA_TIMEOUT, None) for p in (defines, uses, defines)])
        assert sb.java_stats["warm"] == 3
    assert a.status == a2.status == "passed", a
    assert b.status == "failed" and b.detail == "compile error" and "cannot find symbol" in b.stderr_tail, b


def test_over_budget_compilations_fall_back_to_javac_in_the_run() -> None:
    # A budget no compilation can meet: every program is taken from the warm compiler and
    # compiled in its own run instead (the compiler JVM killed and restarted each time), with the
    # per-program path's verdicts.
    need("java")
    names = ["pass", "assertion fails", "compile error", "exit 0 before the tests"]
    items = [("java", MIXED[n], JAVA_TIMEOUT, None) for n in names]
    with Sandbox(workers=2, java_compile_budget=1e-6) as sb:
        res = run_all(sb, items)
        assert sb.java_stats == {"warm": 0, "per-program": len(items)}
    assert [r.status for r in res] == [EXPECTED[n] for n in names]
    assert res[2].detail == "compile error" and "incompatible types" in res[2].stderr_tail


def test_a_compiler_that_cannot_start_turns_itself_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    need("java")
    broken = tmp_path / "SantaJavac.java"
    broken.write_text("this is not Java\n")
    monkeypatch.setattr(sandbox_mod, "_JAVA_SERVER", broken)
    names = ["pass", "compile error", "exception"]
    with Sandbox(workers=2) as sb:
        res = run_all(sb, [("java", MIXED[n], JAVA_TIMEOUT, None) for n in names])
        assert sb.java_stats == {"warm": 0, "per-program": 3}
    assert [r.status for r in res] == ["passed", "failed", "failed"]
    assert res[1].detail == "compile error"


def test_execute_batches_java_transparently(monkeypatch: pytest.MonkeyPatch) -> None:
    # The harness calls execute(): it must get the warm path without asking, and results in order.
    need("java")
    import santa.eval.execution as execution_mod

    seen: list[dict[str, int]] = []

    class Recording(Sandbox):  # the real sandbox, remembering how its Java programs compiled
        def close(self) -> None:
            if not self._closed:
                seen.append(dict(self.java_stats))
            super().close()

    monkeypatch.setattr(execution_mod, "Sandbox", Recording)
    jobs = [Job("java", MIXED[n], key=n, timeout=JAVA_TIMEOUT) for n in ("pass", "exception", "compile error", "pass")]
    res = execute(jobs, workers=2, progress=False)
    assert [r.status for r in res] == ["passed", "failed", "failed", "passed"]
    assert res[0] == res[3]  # identical jobs run once
    # Three distinct programs, compiled warm (a loaded machine may push one past the budget).
    assert len(seen) == 1 and sum(seen[0].values()) == 3 and seen[0]["warm"] >= 2, seen


# ------------------------------------------------------------------------- hostile completions


def live_pids_of_uid(uid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.append(int(name))
            except OSError:
                pass
    return out


def uid_of(r: ExecResult) -> int | None:
    for line in r.stdout_tail.splitlines():
        if line.startswith("uid "):
            return int(line.split()[1])
    return None


@pytest.fixture()
def victim():
    """A root-owned, world-readable file in a world-readable directory the runs can see."""
    d = Path(tempfile.mkdtemp(prefix="santa-victim-", dir="/var/tmp"))
    f = d / "victim.txt"
    f.write_text("precious")
    f.chmod(0o644)
    d.chmod(0o755)
    yield f
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


@pytest.fixture()
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


def _strong(sb: Sandbox) -> None:
    g = sb.guarantees
    if not (g.pid_namespace and g.net_namespace and g.uid_drop and g.readonly_fs):
        pytest.skip("needs the full sandbox (root mode: PID and network namespaces, uid drop, read-only view)")


def java_hostile(victim: Path, port: int, secret: str) -> dict[str, str]:
    v = str(victim)
    return {
        "spin": java("", UID_LINE + "        while (args.length == 0) { }"),
        "exit 0 early": java("", "        System.exit(0);"),
        "halt 0 early": java("", "        Runtime.getRuntime().halt(0);"),
        "thread bomb": java(
            "",
            UID_LINE + "        while (true) { Thread t = new Thread(() -> { try { Thread.sleep(600000); }"
            " catch (InterruptedException e) { } }); t.start(); }",
        ),
        "process bomb": java(
            "",
            UID_LINE + "        java.util.List<Process> ps = new java.util.ArrayList<>();\n"
            '        while (true) ps.add(new ProcessBuilder("/bin/sleep", "600").start());',
        ),
        "daemonized child": java(
            "", UID_LINE + '        new ProcessBuilder("/bin/sh", "-c", "setsid /bin/sleep 600 &").start().waitFor();'
        ),
        "write outside": java("", f'        java.nio.file.Files.writeString(java.nio.file.Paths.get("{v}"), "gone");'),
        "delete outside": java("", f'        java.nio.file.Files.delete(java.nio.file.Paths.get("{v}"));'),
        "network": java("", f'        new java.net.Socket("127.0.0.1", {port}).close();'),
        # Leaves a file in its own /tmp and working directory for the next program to find.
        "plant": java(
            "",
            f'        java.nio.file.Files.writeString(java.nio.file.Paths.get("/tmp/planted"), "{secret}");\n'
            f'        java.nio.file.Files.writeString(java.nio.file.Paths.get("planted"), "{secret}");',
        ),
        # Looks for anything another program left: its own cwd holds only its own files.
        "snoop": java(
            "",
            '        for (String p : new String[] {"/tmp/planted", "planted", "/tmp/run/planted"})\n'
            '            if (new java.io.File(p).exists()) throw new RuntimeException("found " + p);\n'
            '        for (String f : new java.io.File(".").list())\n'
            '            if (!f.endsWith(".java") && !f.endsWith(".class")) throw new RuntimeException("saw " + f);',
        ),
        "static state": java("    static int counter = 0;", "        counter++;\n        assert counter == 1;"),
    }


JAVA_HOSTILE_EXPECTED = {
    "spin": {"timeout"},
    "exit 0 early": {"failed"},
    "halt 0 early": {"failed"},
    "thread bomb": {"failed", "timeout"},
    "process bomb": {"failed", "timeout"},
    "daemonized child": {"passed"},
    "write outside": {"failed"},
    "delete outside": {"failed"},
    "network": {"failed"},
    "plant": {"passed"},
    "snoop": {"passed"},
    "static state": {"passed"},
}


def test_hostile_java_is_contained_and_leaves_good_programs_alone(victim: Path, listener: int) -> None:
    need("java")
    secret = secrets.token_hex(8)
    hostile = java_hostile(victim, listener, secret)
    names = list(hostile)
    good = MIXED["pass"]
    # Good programs between the hostile ones, in one batch through one warm compiler.
    items: list[tuple[str, str, float, object]] = []
    for n in names:
        items.append(("java", hostile[n], 4.0 if n in ("spin", "thread bomb", "process bomb") else JAVA_TIMEOUT, None))
        items.append(("java", good, JAVA_TIMEOUT, None))
    with Sandbox(workers=3, **WARM) as sb:
        _strong(sb)
        res = run_all(sb, items)
        assert sb.java_stats["warm"] == len(items)
    hostile_res = dict(zip(names, res[0::2]))
    for n, r in hostile_res.items():
        assert r.status in JAVA_HOSTILE_EXPECTED[n], (n, r)
    assert all(r.status == "passed" and r.stdout_tail.strip() == "[1, a]" for r in res[1::2]), res[1::2]
    assert "sentinel" in hostile_res["exit 0 early"].detail and "sentinel" in hostile_res["halt 0 early"].detail
    assert (
        "FileSystemException" in hostile_res["write outside"].stderr_tail
        or "AccessDeniedException" in hostile_res["write outside"].stderr_tail
    ), hostile_res["write outside"]
    assert victim.read_text() == "precious"
    assert (
        "ConnectException" in hostile_res["network"].stderr_tail
        or "SocketException" in hostile_res["network"].stderr_tail
    )
    # Nothing any of them started is still alive, whatever it did (threads, setsid, children).
    for n in ("spin", "thread bomb", "process bomb", "daemonized child"):
        uid = uid_of(hostile_res[n])
        assert uid is not None and uid != os.geteuid(), (n, hostile_res[n])
        assert live_pids_of_uid(uid) == [], n


def test_hostile_javascript_is_contained(victim: Path, listener: int) -> None:
    need("javascript")
    v = str(victim)
    secret = secrets.token_hex(8)
    uid = "console.log('uid ' + process.getuid());\n"
    hostile = {
        "spin": uid + "for (;;) {}\n",
        "exit 0 early": "process.exit(0);\nrequire('node:assert').equal(1, 2);\n",
        "process bomb": uid + "const cp = require('child_process');\n"
        "for (;;) { try { cp.spawn('/bin/sleep', ['600']); } catch (e) { } }\n",
        # The classic shell fork bomb, bounded by the run's process limit, killed with the run.
        "fork bomb": uid + "require('child_process').spawn('/bin/sh', ['-c', 'bomb() { bomb | bomb & }; bomb'], "
        "{stdio: 'ignore'});\nsetTimeout(() => {}, 600000);\n",
        "daemonized child": uid + "require('child_process').spawn('/bin/sleep', ['600'], "
        "{detached: true, stdio: 'ignore'}).unref();\n",
        "write outside": f"require('fs').writeFileSync({v!r}, 'gone');\n",
        "delete outside": f"require('fs').unlinkSync({v!r});\n",
        "network": f"const s = require('net').connect({listener}, '127.0.0.1');\n"
        "s.on('connect', () => process.exit(0));\ns.on('error', (e) => { console.error(e.code); process.exit(1); });\n",
        "plant": f"require('fs').writeFileSync('/tmp/planted', '{secret}');\n"
        f"require('fs').writeFileSync('planted', '{secret}');\n",
        "snoop": "const fs = require('fs');\nfor (const p of ['/tmp/planted', 'planted']) "
        "if (fs.existsSync(p)) throw new Error('found ' + p);\n"
        "if (fs.readdirSync('.').join() !== 'program.js') throw new Error('saw ' + fs.readdirSync('.'));\n",
    }
    expected = {
        "spin": {"timeout"},
        "exit 0 early": {"failed"},
        "process bomb": {"failed", "timeout"},
        "fork bomb": {"timeout"},
        "daemonized child": {"passed"},
        "write outside": {"failed"},
        "delete outside": {"failed"},
        "network": {"failed"},
        "plant": {"passed"},
        "snoop": {"passed"},
    }
    good = "const assert = require('node:assert');\nassert.deepEqual([1, 2].map(x => x * 2), [2, 4]);\nconsole.log('ok');\n"
    names = list(hostile)
    items: list[tuple[str, str, float, object]] = []
    for n in names:
        items.append(("javascript", hostile[n], 3.0, None))
        items.append(("javascript", good, 10.0, None))
    with Sandbox(workers=3) as sb:
        _strong(sb)
        res = run_all(sb, items)
    got = dict(zip(names, res[0::2]))
    for n, r in got.items():
        assert r.status in expected[n], (n, r)
    assert all(r.status == "passed" and r.stdout_tail.strip() == "ok" for r in res[1::2]), res[1::2]
    assert "sentinel" in got["exit 0 early"].detail
    assert victim.read_text() == "precious"
    assert "ECONNREFUSED" in got["network"].stderr_tail or "ENETUNREACH" in got["network"].stderr_tail, got["network"]
    for n in ("spin", "process bomb", "fork bomb", "daemonized child"):
        uid = uid_of(got[n])
        assert uid is not None and uid != os.geteuid(), (n, got[n])
        assert live_pids_of_uid(uid) == [], n


def test_unisolated_mode_compiles_warm_and_leaves_nothing() -> None:
    # isolation="none": no PID namespace takes the compiler JVM down with the supervisor; closing
    # the sandbox must still end it (and every run). Benign programs only.
    need("java")
    from test_sandbox import descendants_of

    before = set(descendants_of(os.getpid()))
    with Sandbox(workers=2, isolation="none", **WARM) as sb:
        assert not sb.guarantees.pid_namespace
        res = run_all(
            sb, [("java", MIXED[n], JAVA_TIMEOUT, None) for n in ("pass", "compile error", "exit 0 before the tests")]
        )
        assert sb.java_stats == {"warm": 3, "per-program": 0}
        assert any("java" in _cmdline(p) for p in descendants_of(os.getpid())), "the compiler JVM is not running"
    assert [r.status for r in res] == ["passed", "failed", "failed"]
    assert set(descendants_of(os.getpid())) <= before


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_deep_nesting_gets_the_javac_commands_verdict() -> None:
    # javac recurses per nesting level: the javac command overflows its stack ("The system is out
    # of resources", a compile error) on a long enough expression. The warm compiler compiles on a
    # smaller stack and hands what overflows it to the javac command, so the verdicts agree.
    need("java")

    def prog(n: int) -> str:
        return (
            "class Problem { public static void main(String[] a) { long x = "
            + "+".join(["1"] * n)
            + f"; assert x == {n}; }} }}\n"
        )

    items = [("java", prog(n), JAVA_TIMEOUT, None) for n in (50, 3000)]
    with Sandbox(workers=2, **WARM) as warm_box:
        warm = run_all(warm_box, items)
        assert warm_box.java_stats == {"warm": 1, "per-program": 1}
    with Sandbox(workers=2, java_compiler=False) as cold_box:
        cold = run_all(cold_box, items)
    assert (
        [(r.status, r.detail) for r in warm]
        == [(r.status, r.detail) for r in cold]
        == [("passed", ""), ("failed", "compile error")]
    )


def test_tighter_limits_compile_in_the_run() -> None:
    # The compiler JVM has a run's default limits; a job with less memory compiles with javac in
    # its own run, under its own limits, as it always did.
    need("java")
    from santa.eval.sandbox import Limits

    with Sandbox(workers=1) as sb:
        r = sb.run("java", MIXED["pass"], timeout=JAVA_TIMEOUT, limits=Limits(memory_bytes=1 << 30))
        assert sb.java_stats == {"warm": 0, "per-program": 1}
    assert r.status == "passed", r
