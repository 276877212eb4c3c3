"""SIGTERM handled like Ctrl-C: while :func:`signals_raise` is active, SIGTERM and SIGINT raise
:class:`Signalled` (a ``KeyboardInterrupt``) in the main thread, wherever Python is.

Without it, SIGTERM (a scheduler's preemption, ``kill``) ends the interpreter at once: no
``finally`` runs, no file is closed, no child is stopped, and the shell sees a bare signal. As a
``KeyboardInterrupt``, it unwinds through every ``finally`` and ``with`` that Ctrl-C does (the
sandbox's supervisor is stopped, the caches are closed after their last whole line), and the
caller turns it into a :class:`~santa.errors.RunInterrupted` saying what was kept.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT)


class Signalled(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def signal_of(exc: KeyboardInterrupt) -> int:
    """The signal behind a ``KeyboardInterrupt``: its own, or SIGINT (Python's Ctrl-C)."""
    return exc.signum if isinstance(exc, Signalled) else int(signal.SIGINT)


@contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, the first SIGTERM or SIGINT raises :class:`Signalled`; later ones are
    ignored while the block winds down (a scheduler that repeats SIGTERM before its SIGKILL, a
    second Ctrl-C: the run is stopping already, and a second exception would cut its clean-up
    short). The previous handlers are restored after the block. Signal handlers belong to the
    main thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            return
        received.append(signum)
        raise Signalled(signum)

    previous = {sig: signal.getsignal(sig) for sig in HANDLED}
    for sig in HANDLED:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def ignore_signals() -> None:
    """For a process about to exit on an interruption: a repeated SIGTERM or SIGINT (a second
    Ctrl-C) must not cut its exit short into a traceback or a bare signal status."""
    if threading.current_thread() is threading.main_thread():
        for sig in HANDLED:
            signal.signal(sig, signal.SIG_IGN)
