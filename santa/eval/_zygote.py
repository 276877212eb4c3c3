"""The sandbox's supervisor process ("zygote"): runs untrusted programs, many at a time.

Started by :mod:`santa.eval.sandbox` as ``python -I _zygote.py`` (standard library only, never
imported by the evaluator), it talks JSON lines: its configuration then jobs on stdin, raw outcomes
on stdout.
Classification (passed / failed / ...) is the evaluator's business; this file only runs things.

Why a long-lived supervisor instead of one ``subprocess`` per program:
- Python programs run in a fork of this clean ``python -I`` interpreter, which skips the 30-80 ms
  interpreter start-up a fresh process pays for every program (the throughput target);
- the mount namespace work (read-only file system, reachable toolchains) is done once, here;
- the evaluator (which may hold torch and threads) never forks.

Process tree (namespaces where the kernel allows them, see ``setup``)::

    outer zygote            started by the evaluator; waits for the inner one, relays its status
      └─ zygote (PID 1)     of its own PID namespace; private read-only mount namespace
          ├─ run            PID 1 of the run's PID namespace, own mount namespace (fresh /tmp,
          │                 /proc), setsid, rlimits, own unprivileged uid, no_new_privs; then
          │                 the program itself (Python in this forked interpreter, node / java,
          │                 or javac then java, through execve)
          └─ compiler       Java batches only: the same sandbox as a run's, around a warm
                            javax.tools JVM that turns the batch's Java sources into class files
                            ahead of their runs (``JavaCompilers``); it never runs a program

Killing a run's process (timeout) makes the kernel kill every process of its PID namespace,
whatever they did (setsid, double fork). When the zygote exits, for any reason, the kernel kills
every process of every run, since they all live in its PID namespace. Without PID namespaces the
zygote is a child subreaper: it inherits the orphans of a run and kills them (``sweep_orphans``),
and, with a per-run uid, kills whatever still runs under that uid (``_kill_uid``).
"""

from __future__ import annotations

import atexit
import builtins
import collections
import ctypes
import errno
import gc
import json
import os
import re
import resource
import select
import shutil
import signal
import stat
import struct
import sys
import time
import types
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

# Per-run uids come from a range no distribution allocates (useradd stops far below), so a
# kill(-1) or an RLIMIT_NPROC count as that uid touches only the run's own processes.
UID_BASE = 1_900_000_000
UID_SPAN = 1 << 24

SENTINEL_SCAN = 1 << 16
PRELOAD = (
    "typing",
    "collections",
    "copy",
    "functools",
    "hashlib",
    "heapq",
    "bisect",
    "itertools",
    "math",
    "operator",
    "random",
    "re",
    "string",
)
PATH_ENV = "/usr/local/bin:/usr/bin:/bin"

_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    _libc.unshare.argtypes = [ctypes.c_int]
    _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
except (OSError, AttributeError):  # not Linux: every namespace feature reads as unavailable
    _libc = None


def _lib(what: str) -> ctypes.CDLL:
    """libc for a call made only where a probe found the feature (so never off Linux)."""
    if _libc is None:
        raise OSError(errno.ENOSYS, what)
    return _libc


def _err(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def unshare(flags: int) -> None:
    if _libc is None or _libc.unshare(flags) != 0:
        raise _err(f"unshare({flags:#x})") if _libc else OSError(errno.ENOSYS, "unshare")


def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if _libc is None or _libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise _err(f"mount {target}") if _libc else OSError(errno.ENOSYS, "mount")


def prctl(option: int, arg: int) -> None:
    if _libc is None or _libc.prctl(option, arg, 0, 0, 0) != 0:
        raise _err(f"prctl({option})") if _libc else OSError(errno.ENOSYS, "prctl")


# --------------------------------------------------------------------------------------------
# One-time set-up: which isolation the kernel grants, done in the zygote's own mount namespace.
# --------------------------------------------------------------------------------------------


class Features:
    def __init__(self) -> None:
        self.mode = "none"  # root | userns | none
        self.mount_ns = False  # the zygote's private mount namespace (read-only view, scratch tmpfs)
        self.readonly_fs = False  # every mount read-only for the runs
        self.run_flags = 0  # namespaces unshared per run
        self.uid_drop = False  # each run under its own unprivileged uid
        self.notes: list[str] = []

    def as_dict(self) -> dict[str, Any]:
        f = self.run_flags
        return {
            "mode": self.mode,
            "pid_namespace": bool(f & CLONE_NEWPID),
            "net_namespace": bool(f & CLONE_NEWNET),
            "mount_namespace": bool(f & CLONE_NEWNS),
            "ipc_namespace": bool(f & CLONE_NEWIPC),
            "readonly_fs": self.readonly_fs,
            "uid_drop": self.uid_drop,
            "subreaper": True,
            "notes": self.notes,
        }


def _unescape_mountinfo(s: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo octal escapes.
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _mounts() -> list[tuple[str, set[str]]]:
    rows = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            parts = line.split()
            rows.append((_unescape_mountinfo(parts[4]), set(parts[5].split(","))))
    return rows


_FLAG_OF_OPTION = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}


def _make_everything_readonly(skip: set[str], feats: Features) -> None:
    # MS_BIND is what makes a remount change only this namespace's view of the mount; a remount
    # without it would change the file system (superblock) for every process on the machine.
    failed = []
    for point, opts in _mounts():
        if point in skip:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt, bit in _FLAG_OF_OPTION.items():
            if opt in opts:
                flags |= bit
        try:
            mount(None, point, None, flags)
        except OSError:
            failed.append(point)
    feats.readonly_fs = not failed
    if failed:
        feats.notes.append(f"could not make read-only: {', '.join(failed[:5])}")


def _others_reach(path: str) -> str | None:
    """The top-most directory on the way to ``path`` that other users cannot enter, or None."""
    parts = os.path.abspath(path).split("/")[1:]
    cur = ""
    for p in parts[:-1]:
        cur += "/" + p
        try:
            if not os.stat(cur).st_mode & stat.S_IXOTH:
                return cur
        except OSError:
            return None
    return None


def _expose_toolchains(paths: list[str], scratch: str, feats: Features) -> None:
    """Make toolchain directories that sit under a private directory (pyenv in /root, a JDK in a
    home directory) reachable for the unprivileged run uid, in this mount namespace only: the
    private ancestor is covered with an empty tmpfs and the toolchain bind-mounted back at its own
    path (so RPATHs, sys.prefix and shebangs keep working), which also hides the rest of it."""
    by_top: dict[str, list[str]] = {}
    for p in sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)}):
        top = _others_reach(p)
        if top is None:
            continue
        if any(p == q or p.startswith(q + "/") for q in by_top.get(top, [])):
            continue
        by_top.setdefault(top, []).append(p)
    n = 0
    for top, wanted in by_top.items():
        stashes = []
        for p in wanted:
            st = os.path.join(scratch, f".stash{n}")
            n += 1
            if os.path.isdir(p):
                os.mkdir(st)
            else:
                open(st, "w").close()
            mount(p, st, None, MS_BIND | MS_REC)
            stashes.append((st, p))
        mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        for st, p in stashes:
            if os.path.isdir(st):
                os.makedirs(p, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(p), mode=0o755, exist_ok=True)
                open(p, "w").close()
            mount(st, p, None, MS_MOVE)
            if os.path.isdir(st):
                os.rmdir(st)
            else:
                os.unlink(st)
        feats.notes.append(f"{top} is private: covered with an empty tmpfs, re-exposing {', '.join(wanted)}")


def _write_file(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def setup(cfg: dict[str, Any]) -> tuple[Features, str]:
    """Enter a private mount namespace and find what each run may get. Returns (features, scratch)."""
    feats = Features()
    want = cfg.get("isolation", "auto")
    # This interpreter runs the Python programs: its prefix and import path must stay readable.
    own = [sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))]
    own += [p for p in sys.path if p and os.path.isdir(p)]
    cfg["toolchain_paths"] = list(cfg.get("toolchain_paths", [])) + own
    cfg["toolchain_checks"] = list(cfg.get("toolchain_checks", [])) + [os.__file__] + own
    try:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        feats.notes.append("no child subreaper: orphans of a run are not collected")
    if want != "none" and _libc is not None:
        if os.geteuid() == 0:
            try:
                unshare(CLONE_NEWNS)
                feats.mode, feats.mount_ns = "root", True
            except OSError as e:
                feats.notes.append(f"root, but no mount namespace ({e.strerror})")
        if not feats.mount_ns:
            uid, gid = os.geteuid(), os.getegid()
            try:
                unshare(CLONE_NEWUSER | CLONE_NEWNS)
                _write_file("/proc/self/setgroups", "deny")
                _write_file("/proc/self/uid_map", f"0 {uid} 1")
                _write_file("/proc/self/gid_map", f"0 {gid} 1")
                feats.mode, feats.mount_ns = "userns", True
            except OSError as e:
                feats.notes.append(f"no user namespace ({e.strerror})")
    scratch = ""
    if feats.mount_ns:
        try:
            # Private first: nothing mounted below may propagate back to the host.
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=2g")
            scratch = "/tmp"
            if feats.mode == "root":
                try:
                    _expose_toolchains(cfg.get("toolchain_paths", []), scratch, feats)
                except OSError as e:
                    feats.notes.append(f"could not expose toolchains: {e}")
            _make_everything_readonly({"/tmp"}, feats)
        except OSError as e:
            feats.notes.append(f"mount namespace set-up failed ({e}); no file system isolation")
            feats.mount_ns = False
            feats.mode = "none" if feats.mode == "userns" else feats.mode
    if not scratch:
        import tempfile

        scratch = tempfile.mkdtemp(prefix="santa-sandbox-")
    if feats.mode != "none":
        _probe_run_flags(cfg, feats)
    elif os.geteuid() == 0:
        _probe_run_flags(cfg, feats)  # root without namespaces: uid drop may still work
    return feats, scratch


def _probe(flags: int, uid: int | None, check_paths: list[str]) -> str:
    """Fork a run-like child with ``flags`` (and ``uid``); '' on success, else the reason."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if flags:
                unshare(flags)
            pid2 = os.fork()
            if pid2 == 0:
                if flags & CLONE_NEWPID and flags & CLONE_NEWNS:
                    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                if flags & CLONE_NEWNS:
                    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=1m")
                if uid is not None:
                    os.setgroups([])
                    os.setresgid(uid, uid, uid)
                    os.setresuid(uid, uid, uid)
                for p in check_paths:
                    if os.path.isdir(p):
                        os.listdir(p)
                    else:
                        with open(p, "rb"):
                            pass
                os._exit(0)
            _, st = os.waitpid(pid2, 0)
            if st != 0:
                raise OSError(0, "run-like child failed (mount, privilege drop or toolchain access)")
            os._exit(0)
        except BaseException as e:  # noqa: BLE001  (the reason goes back to the parent)
            os.write(w, str(e).encode()[:500])
            os._exit(1)
    os.close(w)
    msg = b""
    while chunk := os.read(r, 4096):
        msg += chunk
    os.close(r)
    _, st = os.waitpid(pid, 0)
    return "" if st == 0 else (msg.decode(errors="replace") or f"status {st}")


def _probe_run_flags(cfg: dict[str, Any], feats: Features) -> None:
    checks = [p for p in cfg.get("toolchain_checks", []) if os.path.exists(p)]
    full = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if feats.mount_ns:
        full |= CLONE_NEWNS
    flags = 0
    if feats.mode != "none":
        for f in (full, full & ~CLONE_NEWNET, CLONE_NEWPID | (full & CLONE_NEWNS), 0):
            why = _probe(f, None, [])
            if not why:
                flags = f
                break
            feats.notes.append(f"namespaces {f:#x} refused: {why}")
    feats.run_flags = flags
    if feats.mode in ("root", "none") and os.geteuid() == 0 and cfg.get("uid_drop", True):
        why = _probe(flags, UID_BASE + UID_SPAN, checks)
        if why:
            feats.notes.append(f"runs keep uid 0: an unprivileged uid cannot run the toolchains ({why})")
        else:
            feats.uid_drop = True
    if feats.mode == "userns":
        feats.notes.append("user namespace: runs keep the caller's uid, with every capability dropped")


# --------------------------------------------------------------------------------------------
# One run: the zygote forks B, which becomes PID 1 of the run's PID namespace and then the program.
# --------------------------------------------------------------------------------------------


def _set_rlimits(lim: dict[str, Any]) -> None:
    def setl(which: int, soft: int | None, hard: int | None = None) -> None:
        if soft is None:
            return
        hard = soft if hard is None else hard
        cur_soft, cur_hard = resource.getrlimit(which)
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        resource.setrlimit(which, (int(soft), int(hard)))

    setl(resource.RLIMIT_CORE, 0)
    cpu = lim.get("cpu_seconds")
    # Hard one second above soft: SIGXCPU first (fatal for an ordinary process), then SIGKILL,
    # which also reaches a PID 1 (a PID 1 ignores SIGXCPU unless it handles it).
    setl(resource.RLIMIT_CPU, cpu, None if cpu is None else int(cpu) + 1)
    setl(resource.RLIMIT_AS, lim.get("memory_bytes"))
    setl(resource.RLIMIT_FSIZE, lim.get("file_size_bytes"))
    setl(resource.RLIMIT_NOFILE, lim.get("open_files"))
    setl(resource.RLIMIT_NPROC, lim.get("processes"))


def _close_fds_except(keep: set[int]) -> None:
    lo = 3
    for fd in sorted(keep):
        if fd >= lo:
            os.closerange(lo, fd)
            lo = fd + 1
    os.closerange(lo, 1 << 16)


def _drop_capabilities() -> None:
    # In a user namespace the run is uid 0 of that namespace; without capabilities it can neither
    # remount the read-only file system nor undo anything else, and (no_new_privs) never regain them.
    hdr = ctypes.create_string_buffer(struct.pack("II", 0x20080522, 0))  # _LINUX_CAPABILITY_VERSION_3
    data = ctypes.create_string_buffer(24)
    if _lib("capset").syscall(126, hdr, data) != 0:  # capset
        raise _err("capset")


def _report(ctl_w: int, **msg: object) -> None:
    try:
        os.write(ctl_w, (json.dumps(msg) + "\n").encode())
    except OSError:
        pass


def _enter_run_namespaces(
    feats: Features, scratch: str, uid: int | None, limits: dict[str, Any], name: str, nproc_extra: int
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """In a freshly forked process: the run's namespaces, fresh /proc, /tmp and /dev/shm, and its
    working directory. Returns (working directory, environment, limits)."""
    flags = feats.run_flags
    if not flags & CLONE_NEWPID and _libc is not None:
        # Without a PID namespace nothing kills this process when the zygote dies; with one,
        # the zygote is its namespace's PID 1 and its death kills every run.
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if flags & ~CLONE_NEWPID:
        unshare(flags & ~CLONE_NEWPID)
    lim = dict(limits)
    if flags & CLONE_NEWNS:
        opts = f"mode=1777,size={int(lim.get('tmpfs_bytes') or (64 << 20))}"
        if flags & CLONE_NEWPID:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts)
        if os.path.isdir("/dev/shm"):
            mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts)
        workdir = "/tmp/run"
    else:
        workdir = os.path.join(scratch, name)
    os.mkdir(workdir, 0o700)
    if uid is not None:
        os.chown(workdir, uid, uid)
    if lim.get("processes") is not None and nproc_extra:
        # The run shares its uid with the caller: the kernel counts all of that uid's tasks.
        lim["processes"] = int(lim["processes"]) + nproc_extra
    env = {"PATH": PATH_ENV, "HOME": workdir, "TMPDIR": "/tmp" if flags & CLONE_NEWNS else workdir, "LANG": "C.UTF-8"}
    return workdir, env, lim


def _run_b(
    job: dict[str, Any],
    feats: Features,
    scratch: str,
    uid: int | None,
    out_fd: int,
    err_fd: int,
    ctl_w: int,
    nproc_extra: int,
) -> None:
    """The run's first process (PID 1 of its PID namespace): namespaces and mounts, then either
    the Python program itself, or a root init that forks the node / JVM process and reports its
    exit status (so that those get the ordinary signal semantics a PID 1 would not).
    Never returns."""
    try:
        workdir, env, lim = _enter_run_namespaces(feats, scratch, uid, job["limits"], f"run-{job['id']}", nproc_extra)
        lang = job["language"]
        if lang == "python":
            _become_the_run(feats, workdir, uid, out_fd, err_fd, ctl_w, lim, job["zygote_pid"])
            _run_python(job, workdir, env, ctl_w)
        if lang not in ("javascript", "java"):
            raise ValueError(f"unknown language {lang!r}")
        me = os.getpid()
        child = os.fork()
        if child == 0:
            try:
                _become_the_run(feats, workdir, uid, out_fd, err_fd, ctl_w, lim, me)
                if lang == "javascript":
                    _run_javascript(job, workdir, env, ctl_w)
                if job.get("classes") is not None:
                    _run_java_compiled(job, workdir, env, ctl_w)
                _run_java(job, workdir, env, ctl_w)
            except BaseException as e:  # noqa: BLE001
                _report(ctl_w, setup_error=f"{type(e).__name__}: {e}")
            os._exit(126)
        os.close(out_fd)
        os.close(err_fd)
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        _report(ctl_w, child_status=status)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001  (reported as a sandbox error, not a program failure)
        _report(ctl_w, setup_error=f"{type(e).__name__}: {e}")
        os._exit(126)
    os._exit(127)


def _become_the_run(
    feats: Features,
    workdir: str,
    uid: int | None,
    out_fd: int,
    err_fd: int,
    ctl_w: int,
    lim: dict[str, Any],
    parent: int,
    in_fd: int | None = None,
) -> None:
    """Take the run's identity: own session, stdio, limits, unprivileged uid, no way back.
    ``ctl_w`` -1: no control pipe; ``in_fd`` None: stdin is /dev/null."""
    os.setsid()
    os.dup2(os.open(os.devnull, os.O_RDONLY) if in_fd is None else in_fd, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.chdir(workdir)
    # RLIMIT_NPROC before the uid change: the kernel checks the new uid's count against it.
    _set_rlimits(lim)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if _libc is not None:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if feats.mode == "userns":
            _drop_capabilities()
        if os.getpid() != 1:
            # The uid change cleared the parent-death signal: set it again, then make sure the
            # parent did not die in between (it would then never fire).
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(125)
    _close_fds_except({ctl_w} if ctl_w >= 0 else set())
    if ctl_w >= 0:
        os.set_inheritable(ctl_w, False)


def _run_python(job: dict[str, Any], workdir: str, env: dict[str, Any], ctl_w: int) -> None:
    """Run the program in this (forked) interpreter, as ``python -I program.py`` would."""
    path = os.path.join(workdir, "program.py")
    source = job["program"]
    nonce = job["nonce"]
    _write_file(path, source)
    os.close(ctl_w)  # from here on the code is untrusted
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [path]
    main = types.ModuleType("__main__")
    main.__file__ = path
    # Through the module's dict: typeshed's ModuleType declares neither attribute.
    vars(main).update(__builtins__=builtins, __cached__=None)
    sys.modules["__main__"] = main
    job.clear()
    rc, finished = 0, False
    try:
        code = compile(source, path, "exec")
        del source
        exec(code, main.__dict__)
        finished = True
    except SystemExit as e:
        rc = _exit_code(e)
    except BaseException as exc:  # noqa: BLE001  (the program's own exception: report it as python does)
        value, tb = exc, exc.__traceback__
        try:
            if tb is not None:
                value = value.with_traceback(tb.tb_next)  # the program's frames, not ours
            sys.excepthook(type(value), value, value.__traceback__)
        except BaseException:  # noqa: BLE001
            pass
        del value, tb
        rc = 1
    _flush_std()
    if finished:
        try:
            # The module ran to its end, tests included (no SystemExit, no os._exit before).
            os.write(1, f"\n{nonce}\n".encode())
        except OSError:
            pass
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()  # private: what interpreter exit does
        atexit._run_exitfuncs()
    except SystemExit as e:
        rc = rc or _exit_code(e)
    except BaseException:  # noqa: BLE001
        pass
    _flush_std()
    os._exit(rc)


def _exit_code(e: SystemExit) -> int:
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:  # noqa: BLE001
        pass
    return 1


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass


def _run_javascript(job: dict[str, Any], workdir: str, env: dict[str, Any], ctl_w: int) -> None:
    path = os.path.join(workdir, "program.js")
    # Written synchronously to fd 1 after the last test statement; process.exit() earlier, a
    # thrown assertion or an unhandled rejection all leave it out or make the exit non-zero.
    sentinel = f'\n;require("fs").writeSync(1, "\\n{job["nonce"]}\\n");\n'
    _write_file(path, job["program"] + sentinel)
    tc = job["toolchain"]
    mem_mb = max(16, int(job["limits"].get("memory_bytes") or (1 << 31)) // (2 << 20))
    os.close(ctl_w)
    os.execve(tc["node"], [tc["node"], f"--max-old-space-size={mem_mb}", path], env)


def _java_main_class(program: str) -> str:
    if re.search(r"\bclass\s+Problem\b", program):
        return "Problem"
    m = re.search(r"\bclass\s+([A-Za-z_$][\w$]*)[^{]*\{(?:(?!\bclass\s).)*?static\s+void\s+main\s*\(", program, re.S)
    if m:
        return m.group(1)
    m = re.search(r"\bclass\s+([A-Za-z_$][\w$]*)", program)
    return m.group(1) if m else "Problem"


def java_source(job: dict[str, Any]) -> tuple[str, str, str]:
    """(file name, runner class, source) of a Java job: the program plus a second top-level class
    that calls the program's main and prints the run's nonce after it returns (System.exit()
    inside main, an AssertionError or any exception leaves it out). The per-program path and the
    warm compiler compile exactly this text."""
    program = job["program"]
    main_class = _java_main_class(program)
    public = re.search(r"\bpublic\s+(?:final\s+|abstract\s+)*class\s+([A-Za-z_$][\w$]*)", program)
    file_class = public.group(1) if public else main_class
    runner = "SantaSentinel" + job["nonce"][:8]
    sentinel = (
        f"\nclass {runner} {{ public static void main(String[] args) throws Throwable {{ "
        f"{main_class}.main(args); System.out.flush(); "
        f'System.out.print("\\n{job["nonce"]}\\n"); System.out.flush(); }} }}\n'
    )
    return f"{file_class}.java", runner, program + sentinel


def _jvm_flags(job: dict[str, Any]) -> list[str]:
    mem = int(job["limits"].get("memory_bytes") or (1 << 31))
    heap_mb = max(64, mem // (4 << 20))
    # Small fixed reservations keep the JVM inside RLIMIT_AS; SerialGC and, for javac only,
    # C1-only compilation cut start-up CPU and thread count (the program's own JIT is untouched).
    return [
        "-XX:+UseSerialGC",
        "-XX:-UsePerfData",
        "-Xshare:auto",
        f"-Xmx{heap_mb}m",
        "-XX:CompressedClassSpaceSize=64m",
        "-XX:ReservedCodeCacheSize=64m",
    ]


def _java_class_path(tc: dict[str, Any]) -> str:
    return os.pathsep.join(["."] + ([tc["javatuples"]] if tc.get("javatuples") else []))


def _run_java(job: dict[str, Any], workdir: str, env: dict[str, Any], ctl_w: int) -> None:
    """The per-program path: ``javac`` then ``java``, both inside this run's sandbox."""
    tc = job["toolchain"]
    name, runner, source = java_source(job)
    _write_file(os.path.join(workdir, name), source)
    jvm = _jvm_flags(job)
    cp = _java_class_path(tc)
    javac = [
        tc["javac"],
        *("-J" + f for f in [*jvm, "-XX:TieredStopAtLevel=1"]),
        "-encoding",
        "UTF-8",
        "-nowarn",
        "-proc:none",
        "-cp",
        cp,
        "-d",
        ".",
        name,
    ]
    pid = os.posix_spawn(tc["javac"], javac, env)
    while True:
        try:
            _, st = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if st != 0:
        _report(ctl_w, compile_error=True)
        os._exit(1)
    os.close(ctl_w)
    os.execve(tc["java"], [tc["java"], *jvm, "-ea", "-cp", cp, runner], env)


def _run_java_compiled(job: dict[str, Any], workdir: str, env: dict[str, Any], ctl_w: int) -> None:
    """The batched path: the warm compiler (``JavaServer``) already turned exactly the text
    ``_run_java`` would compile into class files; write them and start ``java`` as it would."""
    tc = job["toolchain"]
    name, runner, source = java_source(job)
    _write_file(os.path.join(workdir, name), source)  # the working directory looks the same
    for rel, data in job["classes"]:
        # Names come from javac (binary class names): still, nothing may land outside workdir.
        path = os.path.normpath(os.path.join(workdir, rel))
        if not path.startswith(workdir + "/"):
            raise ValueError(f"class file outside the working directory: {rel!r}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
    os.close(ctl_w)
    os.execve(tc["java"], [tc["java"], *_jvm_flags(job), "-ea", "-cp", _java_class_path(tc), runner], env)


def _count_tasks_of(uid: int) -> int:
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return n


# --------------------------------------------------------------------------------------------
# The supervisor loop.
# --------------------------------------------------------------------------------------------


class Run:
    """One program's run as the supervisor tracks it (every field is set by ``Zygote.start``)."""

    __slots__ = (
        "id",
        "pid",
        "pidfd",
        "ctl",
        "msgs",
        "buf",
        "deadline",
        "start",
        "out",
        "err",
        "uid",
        "nonce",
        "timed_out",
        "tail",
        "max_output",
        "output_killed",
        "java",
    )
    id: int  # the evaluator's job id
    pid: int
    pidfd: int  # -1 without pidfd_open
    ctl: int  # the control pipe's read end; -1 once drained
    msgs: list[dict[str, Any]]
    buf: bytes
    deadline: float
    start: float
    out: str  # paths of the stdout / stderr files
    err: str
    uid: int | None
    nonce: str
    timed_out: bool
    tail: int
    max_output: int
    output_killed: bool
    java: str | None  # how a Java program was compiled ("warm" / "per-program"), None otherwise


def _tail(path: str, n: int) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - n))
            return fh.read(), size
    except OSError:
        return b"", 0


def _stat_fields(pid: int | str) -> list[bytes]:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        data = fh.read()
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    return data[data.rfind(b")") + 2 :].split()


def _processes_of_uid(uid: int) -> list[int]:
    """Live (not zombie) processes owned by ``uid``."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid and _stat_fields(name)[0] != b"Z":
                    pids.append(int(name))
            except (OSError, IndexError):
                pass
    return pids


def _children_of(ppid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if int(_stat_fields(name)[1]) == ppid:
                    out.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _kill_uid(uid: int) -> None:
    """kill(-1, SIGKILL) as ``uid``: every process of that uid wherever it went (new session,
    another process group) and nothing else, since the uid belongs to this run alone."""
    for _ in range(20):
        if not _processes_of_uid(uid):
            return
        pid = os.fork()
        if pid == 0:
            try:
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.005)


# --------------------------------------------------------------------------------------------
# The warm Java compiler: one sandboxed JVM (SantaJavac.java) compiles the Java programs of a
# batch ahead of their runs, so a run pays one `java` start instead of a cold `javac` (~1 s of
# CPU) as well. Compiling never executes a program; each program still runs in its own sandbox.
# --------------------------------------------------------------------------------------------

SERVER_JVM = [
    "-XX:+UseSerialGC",
    "-XX:-UsePerfData",
    "-Xshare:auto",
    "-Xmx512m",
    "-XX:CompressedClassSpaceSize=64m",
    "-XX:ReservedCodeCacheSize=64m",
    # C1 only: a batch of a few hundred programs is over before C2 would pay off.
    "-XX:TieredStopAtLevel=1",
]
SERVER_LIMITS = {
    "cpu_seconds": 1 << 20,  # the supervisor's per-compilation wall budget polices it
    "memory_bytes": 2 << 30,
    "file_size_bytes": 16 << 20,
    "processes": 128,
    "open_files": 256,
    "tmpfs_bytes": 16 << 20,
}


def _warm_compile_fits(limits: dict[str, Any]) -> bool:
    """Whether a job's limits are at least the compiler JVM's: then javac in its own run could
    have compiled whatever the warm compiler compiles (same heap, threads, files). A job with
    tighter limits compiles in its own run, under them, as it always did."""
    return all(int(limits.get(k) or 0) >= SERVER_LIMITS[k] for k in ("memory_bytes", "processes", "open_files"))


def _server_b(
    server: dict[str, Any],
    toolchain: dict[str, Any],
    feats: Features,
    scratch: str,
    uid: int | None,
    in_fd: int,
    out_fd: int,
    err_fd: int,
    nproc_extra: int,
    name: str,
) -> None:
    """First process of the compiler's sandbox: the same namespaces, mounts, uid and rlimits as a
    run's, then ``java SantaJavac.java`` with the zygote's pipes as stdin and stdout."""
    try:
        workdir, env, lim = _enter_run_namespaces(feats, scratch, uid, SERVER_LIMITS, name, nproc_extra)
        path = os.path.join(workdir, "SantaJavac.java")
        _write_file(path, server["source"])
        me = os.getpid()
        child = os.fork()
        if child == 0:
            try:
                _become_the_run(feats, workdir, uid, out_fd, err_fd, -1, lim, me, in_fd=in_fd)
                jars = [toolchain["javatuples"]] if toolchain.get("javatuples") else []
                os.execve(toolchain["java"], [toolchain["java"], *SERVER_JVM, path, *jars], env)
            finally:
                os._exit(126)
        for fd in (in_fd, out_fd, err_fd):
            os.close(fd)  # only the JVM holds the pipes: its death is an EOF for the zygote
        while True:
            try:
                os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        os._exit(0)
    except BaseException:  # noqa: BLE001
        os._exit(126)


def _frame_bytes(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


class JavaCompilers:
    """The warm compilers of a zygote: ``count`` JVMs taking Java jobs from one queue (a big
    machine runs more programs per second than one sequential compiler turns out)."""

    def __init__(self, z: Zygote, server: dict[str, Any]) -> None:
        self.z = z
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.disabled = False
        self.failed_starts = 0
        self.spawned = 0
        self.stats = {"compiled": 0, "compile_errors": 0, "fallbacks": 0, "starts": 0}
        self.servers = [JavaServer(self, server) for _ in range(max(1, int(server.get("count") or 1)))]

    def submit(self, job: dict[str, Any]) -> None:
        if self.disabled:
            self.z.pending.append(job)
        else:
            self.queue.append(job)

    def pump(self) -> None:
        for server in self.servers:
            server.pump()
        if self.disabled:
            while self.queue:
                self.z.pending.append(self.queue.popleft())

    def deadline(self) -> float | None:
        found = [d for d in (s.deadline() for s in self.servers) if d is not None]
        return min(found) if found else None

    def reaped(self, pid: int) -> None:
        for server in self.servers:
            server.reaped(pid)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def disable(self) -> None:
        sys.stderr.write("santa sandbox: warm Java compiler disabled; javac per program\n")
        self.disabled = True
        self.stop()
        for server in self.servers:
            while server.inflight:
                self.queue.appendleft(server.inflight.pop())
        while self.queue:
            self.z.pending.append(self.queue.popleft())


class JavaServer:
    """Feeds Java jobs to one warm compiler JVM and turns its answers into runnable jobs.

    A job leaves here in one of three ways: compiled (its class files attached, it joins the
    zygote's queue of runs), a compile error (answered at once, as the per-program path would:
    status 1, javac's diagnostics on stderr), or, whenever the compiler fails it (crashes, exceeds
    the per-compilation budget, cannot start), as an ordinary job that compiles in its own run
    with ``javac`` as before. The fallback is the per-program path itself, so a verdict never
    depends on whether a program went through here; a hostile source can only cost time.
    """

    PIPELINE = 4  # requests in flight: keeps the compiler busy across the zygote's poll latency
    RESTART_AFTER = 4000  # compilations per JVM, bounding whatever javac's shared caches keep
    START_BUDGET = 60.0  # seconds for the JVM to compile SantaJavac.java and say it is ready

    def __init__(self, pool: JavaCompilers, server: dict[str, Any]) -> None:
        self.pool = pool
        self.z = pool.z
        self.cfg = server
        self.budget = float(server.get("budget") or 5.0)  # seconds per compilation, after the first
        # The first compilation of a JVM runs cold (interpreted javac): more time, and never
        # less than the budget asked for.
        self.first_budget = max(self.budget, 20.0 if server.get("budget") is None else self.budget)
        self.queue = pool.queue  # shared by the pool's compilers
        self.inflight: collections.deque[dict[str, Any]] = collections.deque()
        self.pid = -1
        self.uid: int | None = None
        self.wfd = self.rfd = -1
        self.err_path = ""
        self.outbuf = b""
        self.inbuf = b""
        self.ready = False
        self.alive = False
        self.w_registered = False
        self.started = 0.0
        self.head_since = 0.0
        self.compiled = 0  # by the current JVM
        self.stats = pool.stats
        self.n = 0

    # -- the zygote's side -----------------------------------------------------------------

    def deadline(self) -> float | None:
        if self.pid < 0:
            return None
        if not self.ready:
            return self.started + self.START_BUDGET
        if self.inflight:
            return self.head_since + (self.first_budget if self.compiled == 0 else self.budget)
        return None

    def pump(self) -> None:
        """Start the JVM when there is work, send what fits, enforce the budgets."""
        now = time.monotonic()
        d = self.deadline()
        if d is not None and now >= d:
            self.fail("did not start in time" if not self.ready else "a compilation exceeded its budget")
        if self.pool.disabled:
            return
        if self.pid >= 0 and self.compiled >= self.RESTART_AFTER and not self.inflight:
            self.stop()  # a fresh JVM for the next ones (spawned just below if there are any)
        if self.pid < 0 and self.queue:
            self.spawn()
        while self.ready and self.queue and len(self.inflight) < self.PIPELINE and self.compiled < self.RESTART_AFTER:
            job = self.queue.popleft()
            name, _, source = java_source(job)
            try:
                data = source.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: the per-program path decides what that gives
                self.fallback(job)
                continue
            self.outbuf += struct.pack(">q", job["id"]) + _frame_bytes(name.encode()) + _frame_bytes(data)
            if not self.inflight:
                self.head_since = now
            job["compile_sent"] = now
            self.inflight.append(job)
        self.flush()

    def flush(self) -> None:
        while self.outbuf and self.wfd >= 0:
            try:
                n = os.write(self.wfd, self.outbuf)
            except BlockingIOError:
                break
            except OSError:
                self.fail("its stdin closed")
                return
            self.outbuf = self.outbuf[n:]
        # Wake the zygote when the pipe has room again, and only then (a writable pipe is
        # always ready: registered for good it would spin the loop).
        want = bool(self.outbuf) and self.wfd >= 0
        if want != self.w_registered:
            if want:
                self.z.poll.register(self.wfd, select.POLLOUT)
                self.z.by_fd[self.wfd] = ("javac-in", self)
            else:
                self.z.poll.unregister(self.wfd)
                del self.z.by_fd[self.wfd]
            self.w_registered = want

    def reaped(self, pid: int) -> None:
        """The zygote's reaper collected the compiler's sandbox: its pid is no longer ours to kill."""
        if pid == self.pid:
            self.alive = False

    def on_readable(self) -> None:
        try:
            chunk = os.read(self.rfd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.fail("exited")
            return
        self.inbuf += chunk
        if not self.ready:
            if self.inbuf[:1] != b"R":
                self.fail("said something other than ready")
                return
            self.inbuf = self.inbuf[1:]
            self.ready = True
            self.pool.failed_starts = 0
        while self.inflight:
            parsed = self._parse()
            if parsed is None:
                break
            rid, status, diagnostics, classes = parsed
            job = self.inflight.popleft()
            if job["id"] != rid:
                self.inflight.appendleft(job)
                self.fail("answered out of order")
                return
            now = time.monotonic()
            self.head_since = now
            self.compiled += 1
            self.answer(job, status, diagnostics, classes, now - job["compile_sent"])
        if self.inbuf and not self.inflight:
            self.fail("said more than it was asked")

    def _parse(self) -> tuple[int, int, bytes, list[tuple[str, bytes]]] | None:
        buf, pos = self.inbuf, 0

        def take(n: int) -> bytes | None:
            nonlocal pos
            if len(buf) < pos + n:
                return None
            out = buf[pos : pos + n]
            pos += n
            return out

        def chunk() -> bytes | None:
            head = take(4)
            return None if head is None else take(struct.unpack(">i", head)[0])

        head = take(9)
        diagnostics = chunk()
        count = take(4)
        if head is None or diagnostics is None or count is None:
            return None
        classes = []
        for _ in range(struct.unpack(">i", count)[0]):
            name, data = chunk(), chunk()
            if name is None or data is None:
                return None
            classes.append((name.decode(), data))
        self.inbuf = buf[pos:]
        rid, status = struct.unpack(">qb", head)
        return rid, status, diagnostics, classes

    def answer(
        self, job: dict[str, Any], status: int, diagnostics: bytes, classes: list[tuple[str, bytes]], seconds: float
    ) -> None:
        lim = job["limits"]
        if (
            status == 0
            and sum(len(d) for _, d in classes) + len(job["program"]) > int(lim.get("tmpfs_bytes") or 0) // 2
        ):
            status = 2  # might not fit the run's /tmp where javac would write it: let javac try there
        if status == 1 and len(diagnostics) >= int(lim.get("file_size_bytes") or 0):
            status = 2  # javac's own stderr would hit the file-size limit: the run decides what then
        if status == 0:
            self.stats["compiled"] += 1
            job["classes"] = classes
            self.z.pending.append(job)
        elif status == 1:
            # What the per-program path reports for a compile error: javac's exit status 1 and its
            # diagnostics on stderr, no program run.
            self.stats["compile_errors"] += 1
            tail = int(job.get("tail_bytes", 4096))
            self.z.send(
                {
                    "id": job["id"],
                    "timed_out": False,
                    "output_limit": False,
                    "exit_code": 1,
                    "sentinel": False,
                    "compile_error": True,
                    "setup_error": None,
                    "stdout_tail": "",
                    "stderr_tail": diagnostics[-tail:].decode("utf-8", "replace") if tail else "",
                    "stdout_bytes": 0,
                    "stderr_bytes": len(diagnostics),
                    "duration": seconds,
                    "cpu_seconds": None,
                    "max_rss_kb": None,
                    "uid": None,
                    "java": "warm",
                }
            )
        else:
            self.fallback(job)

    def fallback(self, job: dict[str, Any]) -> None:
        self.stats["fallbacks"] += 1
        job["no_server"] = True
        self.z.pending.append(job)

    # -- the JVM's lifetime ----------------------------------------------------------------

    def spawn(self) -> None:
        z = self.z
        self.pool.spawned += 1
        self.n = self.pool.spawned
        self.stats["starts"] += 1
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        self.err_path = os.path.join(z.scratch, f"javac-server-{self.n}.err")
        err_fd = os.open(self.err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self.uid = z.new_uid()
        pid = z.fork_in_new_pidns()
        if pid == 0:
            try:
                _close_fds_except({in_r, out_w, err_fd})
                _server_b(
                    self.cfg,
                    z.cfg.get("toolchain", {}),
                    z.feats,
                    z.scratch,
                    self.uid,
                    in_r,
                    out_w,
                    err_fd,
                    z.nproc_extra,
                    f"javac-server-{self.n}",
                )
            finally:
                os._exit(126)
        for fd in (in_r, out_w, err_fd):
            os.close(fd)
        os.set_blocking(in_w, False)
        os.set_blocking(out_r, False)
        self.pid, self.wfd, self.rfd = pid, in_w, out_r
        self.alive = True
        z.service_pids.add(pid)
        z.poll.register(out_r, select.POLLIN)
        z.by_fd[out_r] = ("javac-out", self)
        self.ready, self.compiled, self.inbuf, self.outbuf = False, 0, b"", b""
        self.started = time.monotonic()

    def stop(self) -> None:
        """Kill the JVM (its PID namespace goes with it) and forget its pipes."""
        z = self.z
        if self.pid >= 0:
            if self.alive:  # else already reaped: the number may belong to a new run by now
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    os.waitpid(self.pid, 0)
                except ChildProcessError:
                    pass
            if not z.pidns and self.uid is not None:
                _kill_uid(self.uid)
            self.alive = False
            z.service_pids.discard(self.pid)
            if self.uid is not None:
                z.uids_in_use.discard(self.uid)
            if not z.feats.run_flags & CLONE_NEWNS:
                shutil.rmtree(os.path.join(z.scratch, f"javac-server-{self.n}"), ignore_errors=True)
            try:
                os.unlink(self.err_path)
            except OSError:
                pass
        if self.w_registered:
            z.poll.unregister(self.wfd)
            del z.by_fd[self.wfd]
            self.w_registered = False
        if self.rfd >= 0:
            z.poll.unregister(self.rfd)
            del z.by_fd[self.rfd]
        for fd in (self.wfd, self.rfd):
            if fd >= 0:
                os.close(fd)
        self.pid, self.wfd, self.rfd, self.uid = -1, -1, -1, None
        self.outbuf = self.inbuf = b""
        self.ready = False

    def fail(self, why: str) -> None:
        """The JVM misbehaved: the program it was compiling (if any) compiles in its own run, the
        others are sent again to a fresh JVM; two failed starts in a row turn batching off."""
        started = self.ready
        try:
            with open(self.err_path, "rb") as fh:
                tail = fh.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            tail = ""
        self.stop()
        sys.stderr.write(f"santa sandbox: warm Java compiler {why}; {tail}\n")
        if self.inflight:
            self.fallback(self.inflight.popleft())
        while self.inflight:
            self.queue.appendleft(self.inflight.pop())
        if not started:
            self.pool.failed_starts += 1
            if self.pool.failed_starts >= 2 and not self.pool.disabled:
                self.pool.disable()


class Zygote:
    def __init__(self, cfg: dict[str, Any], feats: Features, scratch: str, host_pid: int) -> None:
        self.cfg = cfg
        self.feats = feats
        self.scratch = scratch
        self.host_pid = host_pid  # our pid as /proc (the host's) numbers it
        self.pidns = bool(feats.run_flags & CLONE_NEWPID)
        self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY) if self.pidns else -1
        self.runs: dict[int, Run] = {}  # by pid
        # What a polled fd belongs to: a run ("ctl", "pid") or a warm compiler ("javac-in", "javac-out").
        self.by_fd: dict[int, tuple[str, Run | JavaServer]] = {}
        self.inbuf = b""
        self.stdin_open = True
        self.poll = select.poll()
        self.poll.register(0, select.POLLIN)
        self.uids_in_use: set[int] = set()
        self.use_pidfd = hasattr(os, "pidfd_open")
        self._late: list[tuple[Run, int, resource.struct_rusage]] = []  # reaped by a sweep, finished by the main loop
        self.nproc_extra = 0
        if not feats.uid_drop and os.geteuid() != 0:
            self.nproc_extra = _count_tasks_of(os.getuid())
        # Jobs arrive ahead of free slots (the evaluator sends up to workers + lookahead): that is
        # what lets the warm Java compiler work ahead of the runs. 0: start every job at once.
        self.workers = int(cfg.get("workers") or 0)
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self.service_pids: set[int] = set()  # the compiler's sandbox: not a run, not an orphan
        server = cfg.get("java_server")
        self.javac = JavaCompilers(self, server) if server and server.get("source") else None

    def send(self, obj: dict[str, Any]) -> None:
        if not self.stdin_open:
            return  # the evaluator is gone: nobody reads results
        data = (json.dumps(obj) + "\n").encode()
        try:
            while data:
                data = data[os.write(1, data) :]
        except BrokenPipeError:
            # The evaluator died (SIGKILL) and a result came before its stdin's EOF: stop as on
            # that EOF, not with an exception that would skip shutdown() (without a PID
            # namespace, the runs' own children would then outlive us).
            self.stdin_open = False

    def new_uid(self) -> int | None:
        if not self.feats.uid_drop:
            return None
        while True:
            uid = UID_BASE + int.from_bytes(os.urandom(4), "little") % UID_SPAN
            if uid not in self.uids_in_use:
                self.uids_in_use.add(uid)
                return uid

    def fork_in_new_pidns(self) -> int:
        """fork(); the child is PID 1 of a new PID namespace where the kernel allows it."""
        if self.pidns:
            unshare(CLONE_NEWPID)  # for the next child only: undone right after the fork
        try:
            pid = os.fork()
        except BaseException:
            if self.pidns:
                _setns(self.own_pidns, CLONE_NEWPID)
            raise
        if pid != 0 and self.pidns:
            _setns(self.own_pidns, CLONE_NEWPID)
        return pid

    def enqueue(self, job: dict[str, Any]) -> None:
        # The nonce is drawn here, not at the run's start: a Java program's sentinel class is
        # compiled (by the warm compiler) before its run begins.
        job["nonce"] = os.urandom(16).hex()
        job["toolchain"] = self.cfg.get("toolchain", {})
        job["zygote_pid"] = os.getpid()
        if job.get("language") == "java" and self.javac is not None and _warm_compile_fits(job["limits"]):
            self.javac.submit(job)
        else:
            self.pending.append(job)

    def start_pending(self) -> None:
        while self.pending and (not self.workers or len(self.runs) < self.workers):
            job = self.pending.popleft()
            try:
                self.start(job)
            except OSError as e:
                self.send_setup_error(job, f"could not start: {e}")

    def send_setup_error(self, job: dict[str, Any], why: str) -> None:
        self.send(
            {
                "id": job["id"],
                "setup_error": why,
                "timed_out": False,
                "exit_code": None,
                "sentinel": False,
                "compile_error": False,
                "stdout_tail": "",
                "stderr_tail": "",
                "stdout_bytes": 0,
                "stderr_bytes": 0,
                "duration": 0.0,
                "cpu_seconds": None,
                "max_rss_kb": None,
                "uid": None,
            }
        )

    def start(self, job: dict[str, Any]) -> None:
        run = Run()
        run.id = job["id"]
        run.nonce = job["nonce"]
        # Which way a Java program was compiled: the evaluator counts them (Sandbox.java_stats).
        run.java = None if job["language"] != "java" else "per-program" if job.get("classes") is None else "warm"
        run.tail = int(job.get("tail_bytes", 4096))
        run.out = os.path.join(self.scratch, f"{run.id}.out")
        run.err = os.path.join(self.scratch, f"{run.id}.err")
        run.uid = self.new_uid()
        run.timed_out = False
        run.output_killed = False
        run.max_output = int(job["limits"].get("file_size_bytes") or 0)
        run.msgs = []
        run.buf = b""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        out_fd = os.open(run.out, flags, 0o600)
        err_fd = os.open(run.err, flags, 0o600)
        ctl_r, ctl_w = os.pipe()
        run.start = time.monotonic()
        run.deadline = run.start + float(job["timeout"])
        pid = self.fork_in_new_pidns()
        if pid == 0:
            try:
                os.close(ctl_r)
                _close_fds_except({out_fd, err_fd, ctl_w})
                _run_b(job, self.feats, self.scratch, run.uid, out_fd, err_fd, ctl_w, self.nproc_extra)
            finally:
                os._exit(126)
        os.close(out_fd)
        os.close(err_fd)
        os.close(ctl_w)
        run.pid = pid
        run.ctl = ctl_r
        self.runs[pid] = run
        self.by_fd[ctl_r] = ("ctl", run)
        self.poll.register(ctl_r, select.POLLIN)
        if self.use_pidfd:
            try:
                run.pidfd = os.pidfd_open(pid)
                self.by_fd[run.pidfd] = ("pid", run)
                self.poll.register(run.pidfd, select.POLLIN)
            except OSError:
                self.use_pidfd = False
                run.pidfd = -1
        else:
            run.pidfd = -1

    def drain_ctl(self, run: Run, block: bool) -> None:
        while run.ctl >= 0:
            if not block and not select.select([run.ctl], [], [], 0)[0]:
                return
            try:
                chunk = os.read(run.ctl, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.poll.unregister(run.ctl)
                del self.by_fd[run.ctl]
                os.close(run.ctl)
                run.ctl = -1
                return
            run.buf += chunk
            while b"\n" in run.buf:
                line, run.buf = run.buf.split(b"\n", 1)
                try:
                    run.msgs.append(json.loads(line))
                except ValueError:
                    pass

    def finish(self, run: Run, status: int, ru: resource.struct_rusage) -> None:
        del self.runs[run.pid]
        if run.pidfd >= 0:
            self.poll.unregister(run.pidfd)
            del self.by_fd[run.pidfd]
            os.close(run.pidfd)
        # The run's process is gone; so is anything that held the pipe's write end, except
        # (without a PID namespace) its stray descendants, which the sweeps below kill first.
        if not self.pidns:
            if run.uid is not None:
                _kill_uid(run.uid)
            self.sweep_orphans()
        self.drain_ctl(run, block=True)
        if run.uid is not None:
            self.uids_in_use.discard(run.uid)
        info: dict[str, Any] = {}
        for m in run.msgs:
            info.update(m)
        out, out_size = _tail(run.out, max(run.tail, SENTINEL_SCAN))
        err, err_size = _tail(run.err, run.tail)
        marker = f"\n{run.nonce}\n".encode()
        idx = out.rfind(marker)
        if idx >= 0:
            out = out[:idx] + out[idx + len(marker) :]
        for p in (run.out, run.err):
            try:
                os.unlink(p)
            except OSError:
                pass
        if not self.feats.run_flags & CLONE_NEWNS:
            shutil.rmtree(os.path.join(self.scratch, f"run-{run.id}"), ignore_errors=True)
        if "child_status" in info:  # node / JVM under a root init: their own status
            status = int(info["child_status"])
        self.send(
            {
                "id": run.id,
                "timed_out": run.timed_out,
                "output_limit": run.output_killed,
                "exit_code": os.waitstatus_to_exitcode(status),
                "sentinel": idx >= 0,
                "compile_error": bool(info.get("compile_error")),
                "setup_error": info.get("setup_error"),
                "stdout_tail": out[-run.tail :].decode("utf-8", "replace") if run.tail else "",
                "stderr_tail": err[-run.tail :].decode("utf-8", "replace") if run.tail else "",
                "stdout_bytes": out_size,
                "stderr_bytes": err_size,
                "duration": time.monotonic() - run.start,
                "cpu_seconds": ru.ru_utime + ru.ru_stime,
                "max_rss_kb": ru.ru_maxrss,
                "uid": run.uid,
                "java": run.java,
            }
        )

    def reap(self, pid: int = -1, block: bool = False) -> None:
        while self.runs or pid != -1:
            try:
                got, status, ru = os.wait4(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if got == 0:
                return
            run = self.runs.get(got)
            if run is not None:
                self.finish(run, status, ru)
            elif got in self.service_pids and self.javac is not None:
                self.javac.reaped(got)
            if pid != -1:
                return

    def check_outputs(self) -> None:
        """Kill runs whose stdout or stderr reached the file-size limit: a program that keeps
        printing past it (a PID 1 or a runtime that ignores SIGXFSZ) would otherwise spin until
        its timeout."""
        for run in list(self.runs.values()):
            if run.timed_out or run.output_killed or not run.max_output:
                continue
            try:
                big = max(os.stat(run.out).st_size, os.stat(run.err).st_size) >= run.max_output
            except OSError:
                continue
            if big:
                run.output_killed = True
                self.kill_run(run, timed_out=False)

    def kill_run(self, run: Run, timed_out: bool = True) -> None:
        run.timed_out = run.timed_out or timed_out
        try:
            os.kill(run.pid, signal.SIGKILL)  # an unreaped child of ours: the pid cannot be reused
        except ProcessLookupError:
            pass
        if not self.pidns and run.uid is not None:
            _kill_uid(run.uid)

    def sweep_orphans(self) -> None:
        """Without a PID namespace: kill what runs left behind and the kernel re-parented to us."""
        for _ in range(50):
            strays = [p for p in _children_of(self.host_pid) if p not in self.runs and p not in self.service_pids]
            if not strays:
                return
            for p in strays:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)
            while True:
                try:
                    got, status, ru = os.wait4(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if got == 0:
                    break
                run = self.runs.get(got)
                if run is not None:  # a run ended meanwhile: finish it on the next reap
                    self._late.append((run, status, ru))
                elif got in self.service_pids and self.javac is not None:
                    self.javac.reaped(got)

    def on_stdin(self) -> None:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            self.stdin_open = False
            self.poll.unregister(0)
            return
        self.inbuf += chunk
        while b"\n" in self.inbuf:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            if not line.strip():
                continue
            self.enqueue(json.loads(line))

    def loop(self) -> None:
        # Until the evaluator closes our stdin: it does so when it is done, or abandons the batch
        # (interrupted, crashed), and either way whatever still runs is killed in shutdown().
        try:
            self._loop()
        finally:
            # Whatever ended the loop, an exception included: nothing of any run outlives us.
            self.shutdown()

    def _loop(self) -> None:
        while self.stdin_open:
            now = time.monotonic()
            for run in list(self.runs.values()):
                if not run.timed_out and now >= run.deadline:
                    self.kill_run(run)
            self.check_outputs()
            if self.javac is not None:
                self.javac.pump()
            self.start_pending()
            pending = [r.deadline for r in self.runs.values() if not r.timed_out]
            javac_deadline = self.javac.deadline() if self.javac is not None else None
            if javac_deadline is not None:
                pending.append(javac_deadline)
            if not self.runs and javac_deadline is None:
                wait_ms = 1000
            elif self.use_pidfd:
                # At least every 100 ms while runs are alive: the output-size check above.
                wait_ms = 100 if not pending else min(100, max(0, int((min(pending) - now) * 1000) + 1))
            else:
                wait_ms = 5  # no pidfd to wake us when a run exits: poll for it
            events = self.poll.poll(wait_ms)
            for fd, _ev in events:
                # A finished run's fds are closed and may be reused by a run started from stdin
                # in this same batch: stdin comes last, and nothing here blocks on a guess.
                kind, owner = self.by_fd.get(fd, (None, None))
                if isinstance(owner, Run):
                    if kind == "ctl":
                        self.drain_ctl(owner, block=False)
                    elif kind == "pid" and owner.pid in self.runs:
                        self.reap(owner.pid)
                elif isinstance(owner, JavaServer):
                    if kind == "javac-out" and fd == owner.rfd:
                        owner.on_readable()
                    elif kind == "javac-in" and fd == owner.wfd:
                        owner.flush()
            self.reap()
            if any(fd == 0 for fd, _ev in events):
                self.on_stdin()
            while self._late:
                run, status, ru = self._late.pop()
                if run.pid in self.runs:
                    self.finish(run, status, ru)

    def shutdown(self) -> None:
        if self.javac is not None:
            self.javac.stop()
        for run in list(self.runs.values()):
            self.kill_run(run)
        # Every descendant must be gone before we exit, so that "the evaluation returned" means
        # "nothing of it runs". With a PID namespace our own exit guarantees it (we are its
        # PID 1); without, kill and reap whatever the kernel handed to us as subreaper.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not self.pidns:
                for p in _children_of(self.host_pid):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            try:
                os.wait4(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
        if not self.feats.mount_ns:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _setns(fd: int, nstype: int) -> None:
    if _lib("setns").setns(fd, nstype) != 0:
        raise _err("setns")


def _enter_own_pid_namespace(feats: Features) -> int:
    """Become PID 1 of a new PID namespace (the parent stays behind, waiting), so that when the
    zygote exits for any reason the kernel kills every process of every run. Returns our host pid."""
    unshare(CLONE_NEWPID)
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid != 0:
        # The outer process: relay the zygote's exit status, hold nothing else.
        os.close(alive_r)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        while True:
            try:
                _, st = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        os._exit(os.waitstatus_to_exitcode(st) & 0xFF if os.WIFEXITED(st) else 1)
    os.close(alive_w)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([alive_r], [], [], 0)[0]:  # EOF: the outer process died before the prctl
        os._exit(1)
    os.close(alive_r)
    # Per-run PID namespaces: unshare before each fork and come back to ours afterwards.
    try:
        own = os.open("/proc/self/ns/pid", os.O_RDONLY)
        unshare(CLONE_NEWPID)
        _setns(own, CLONE_NEWPID)
        os.close(own)
    except OSError as e:
        feats.notes.append(f"runs share the supervisor's PID namespace ({e})")
        feats.run_flags &= ~CLONE_NEWPID
    return _host_pid_of_self()


def _host_pid_of_self() -> int:
    # /proc is still the host's: /proc/self names us by our host pid.
    return int(os.readlink("/proc/self"))


def main() -> None:
    # The configuration is the first line on stdin (not argv: it would fill every `ps` listing).
    buf = b""
    while b"\n" not in buf:
        chunk = os.read(0, 65536)
        if not chunk:
            os._exit(0)
        buf += chunk
    line, rest = buf.split(b"\n", 1)
    cfg = json.loads(line)
    feats, scratch = setup(cfg)
    host_pid = os.getpid()
    if feats.run_flags & CLONE_NEWPID:
        try:
            host_pid = _enter_own_pid_namespace(feats)
        except OSError as e:
            feats.notes.append(f"supervisor has no PID namespace of its own ({e}): runs share ours")
            feats.run_flags &= ~CLONE_NEWPID
    # Modules most benchmark programs import (typing alone costs ~20 ms per run otherwise), loaded
    # once here like a fork server's preload. A module is still imported fresh per zygote, and a
    # run's changes to it die with the run's process; random is re-seeded in every fork.
    for name in cfg.get("python_preload", PRELOAD):
        try:
            __import__(name)
        except ImportError:
            pass
    # compile() builds the ~120 AST node classes on its first use: once here, not in every run.
    compile(
        "def _warm(a: int, *b, **c) -> None:\n    return [x for x in b] or {k: v for k, v in c.items()}\n",
        "<warm-up>",
        "exec",
    )
    gc.collect()
    gc.freeze()  # forked runs then leave the zygote's objects alone: fewer copy-on-write faults
    z = Zygote(cfg, feats, scratch, host_pid)
    z.inbuf = rest
    z.send({"ready": True, "features": feats.as_dict(), "pid": host_pid})
    z.loop()


if __name__ == "__main__":
    main()
