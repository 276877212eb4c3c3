"""Stopping a long command cleanly on SIGTERM, SIGINT or SIGHUP (a scheduler's preemption,
``kill``, Ctrl-C, a closed terminal).

:func:`stop_on_signals` makes such a signal raise :class:`Stopped` in the main thread, wherever it
is waiting (on a worker's result, on Ray), so that the command's ``finally`` blocks run: it stops
its workers, keeps what they finished, and says how to resume. Code that must not be cut half-way
(swapping finished outputs into place) runs under :func:`deferred`: a signal that arrives there is
raised when it ends. A second signal, while the first is being handled, ends the process at once
with that signal's default action (its worker processes die with it: see
:func:`die_with_parent`).

``repeat="ignore"`` instead ignores the signals that follow the first, for a command whose
clean-up must not be cut (an evaluation stopping its sandboxes and closing its caches).

Training has its own handling (santa/callbacks.py: Lightning's loop stops at the next optimizer
step); this is for the data pipeline (its workers or Ray actors), the evaluation harness and the
``santa`` commands.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Literal

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A signal stopped the command: a KeyboardInterrupt (whatever the signal), so that it
    unwinds through every ``finally`` and ``with`` that Ctrl-C does and no ``except Exception``
    on the way swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def stopped_by(exc: BaseException) -> int | None:
    """The signal that ``exc`` comes from: a :class:`Stopped`, a KeyboardInterrupt (a library may
    raise its own in place of ours: Ray does; then the signal our handler took, else SIGINT), or
    an error raised on the way out of one (Ray's ``ray.wait`` turns it into a SystemError whose
    cause it is); else None."""
    seen: BaseException | None = exc
    interrupted = False
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, Stopped):
            return seen.signum
        interrupted = interrupted or isinstance(seen, KeyboardInterrupt)
        seen = seen.__cause__ or seen.__context__
    if not interrupted:
        return None
    return _state["handling"] or int(signal.SIGINT)


def signal_of(exc: KeyboardInterrupt) -> int:
    """The signal behind an interruption: :func:`stopped_by`, SIGINT when nothing else says."""
    return stopped_by(exc) or int(signal.SIGINT)


_state: dict[str, int | None] = {"defer": 0, "pending": None, "handling": None, "ignore_repeats": 0}
_active: set[int] = set()  # the signals stop_on_signals handles now


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state["handling"] is not None:
        if _state["ignore_repeats"]:
            return
        # Already stopping (cleaning up): a second signal ends the process now.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _state["defer"]:
        _state["pending"] = signum
        return
    _state["handling"] = signum
    raise Stopped(signum)


@contextmanager
def stop_on_signals(repeat: Literal["exit", "ignore"] = "exit") -> Iterator[None]:
    """Within the block, SIGTERM, SIGINT and SIGHUP raise :class:`Stopped` (in the main thread
    only: Python delivers signals there; elsewhere this does nothing); a second one ends the
    process at once (``repeat="exit"``) or is ignored (``"ignore"``). A signal that this process
    ignores (SIGINT in a shell's background job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, _handler)
    saved, saved_active = dict(_state), set(_active)
    _state.update(defer=0, pending=None, handling=None, ignore_repeats=int(repeat == "ignore"))
    _active.clear()
    _active.update(previous)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _state.update(saved)
        _active.clear()
        _active.update(saved_active)


def reclaim() -> None:
    """Handle the signals again after a library replaced the handlers behind Python's back:
    ``ray.init`` installs a C handler that dumps a stack and dies on SIGTERM."""
    if threading.current_thread() is threading.main_thread():
        for sig in _active:
            signal.signal(sig, _handler)


@contextmanager
def deferred() -> Iterator[None]:
    """A block that a signal must not cut half-way: one that arrives in it is raised (as
    :class:`Stopped`) when the block ends."""
    _state["defer"] = int(_state["defer"] or 0) + 1
    try:
        yield
    finally:
        _state["defer"] = int(_state["defer"] or 0) - 1
        pending = _state["pending"]
        if not _state["defer"] and pending is not None:
            _state["pending"] = None
            _state["handling"] = pending
            raise Stopped(pending)


def ignore_signals() -> None:
    """Ignore SIGTERM, SIGINT and SIGHUP from now on: in a worker process, whose parent stops it
    (Ctrl-C reaches every process of the terminal's group; each would otherwise print its own
    KeyboardInterrupt traceback, or die mid-task before the parent knew); in a process exiting
    on an interruption, whose exit a repeated signal must not cut short into a traceback."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """For a worker process on Linux: get ``sig`` when ``parent`` dies, however it dies (SIGKILL,
    the OOM killer), rather than live on as an orphan waiting for tasks that never come (a pool
    worker holds both ends of its call-queue pipe, so it never reads an end of file). Not on
    Linux, this does nothing. (The kernel sends it when the parent's thread that started this
    process ends: the main thread here.)"""
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(sig))
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent:  # the parent died before prctl: nobody would send the signal
        os.kill(os.getpid(), sig)


PARENT_ENV = "SANTA_STOP_WITH_PARENT"


def stop_with_parent_from_env() -> None:
    """In a command another santa process started as a job of its own (``train.py``'s evaluation,
    in its own session so that Ctrl-C reaches it once): get SIGTERM, and so stop cleanly, when
    that parent dies without passing a signal on (SIGKILL, the OOM killer), rather than write on
    into the run directory of a job that is gone. The variable is removed, so that this process's
    own children do not take it for theirs."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent and parent.isdigit():
        die_with_parent(int(parent), signal.SIGTERM)
