"""Engines: run a segment's tasks (:mod:`santa.pipeline.worker`) on workers that keep the
segment's :class:`~santa.pipeline.worker.SegmentWorker`; :class:`LocalEngine` on this machine's
processes, :class:`RayEngine` on Ray actors (a local Ray or a cluster). Both run the same tasks:

* ``run_units``: a task per unit; the worker reads it and writes its files and marker, and only
  the marker comes back (in completion order). Used when there are enough units to keep every
  worker busy (``whole_units``).
* ``run``: a task per batch (the driver reads the input; a spill part goes by name), results in
  input order for the driver to write: one big input file still spreads over every worker."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from santa.errors import SantaError
from santa.pipeline.inputs import Unit
from santa.pipeline.spec import PipelineError
from santa.pipeline.worker import (
    BatchResult,
    SegmentWorker,
    UnitTask,
    WorkerArgs,
    batch_tasks,
    run_unit,
    unit_batches,
    worker_init,
)

# Threads that are safe across fork: jemalloc (pyarrow's allocator, which starts a purging thread
# when imported) takes its locks in its own pthread_atfork handlers and restarts the thread in the
# child when needed.
_FORK_SAFE_THREADS = frozenset({"jemalloc_bg_thd"})
T = TypeVar("T")
K = TypeVar("K")
F = TypeVar("F")
R = TypeVar("R")


def _single_threaded() -> bool:
    """Whether this process runs no thread besides the main one and _FORK_SAFE_THREADS, native
    threads included (Linux; elsewhere the answer is no)."""
    try:
        tasks = os.listdir("/proc/self/task")
        names = []
        for t in tasks:
            with open(f"/proc/self/task/{t}/comm") as fh:
                names.append(fh.read().strip())
    except OSError:
        return False
    main = str(os.getpid())
    return main in tasks and all(n in _FORK_SAFE_THREADS for t, n in zip(tasks, names) if t != main)


def release_memory() -> None:
    """Give back to the system what a task freed: Arrow's pool and glibc's malloc keep freed
    pages for reuse, so a worker that ran a corpus step's tasks (reading spill parts, sorting
    band keys) would hold them through the segments after it, and the driver would publish on
    top of what its corpus steps freed (its peak RSS is reached while publishing)."""
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _map_task(fn: Callable[[Any], T], arg: Any) -> T:
    try:
        return fn(arg)
    finally:
        release_memory()


def _in_order(
    submitted: Iterable[tuple[K, F]],
    depth: int,
    result: Callable[[F], R],
    cancel: Callable[[F], object] | None,
) -> Iterator[tuple[K, R]]:
    """``(key, result(task))`` of each submitted task, in submission order, with at most ``depth``
    in flight: ``submitted`` is lazy, so a task is only sent when one before it is taken. On an
    error (or the caller stopping) the tasks still in flight are cancelled (``cancel``)."""
    window: deque[tuple[K, F]] = deque()
    try:
        for item in submitted:
            window.append(item)
            if len(window) >= depth:
                key, task = window.popleft()
                yield key, result(task)
        while window:
            key, task = window.popleft()
            yield key, result(task)
    except BaseException:
        if cancel is not None:
            for _, task in window:
                cancel(task)
        raise


def _kill_workers(pool: Any) -> None:
    """Kill a ProcessPoolExecutor's workers, running tasks and all. concurrent.futures has no
    public way (Python 3.14 adds ``kill_workers``). A worker killed while sending a result leaves
    half a message in the result pipe, which the pool's manager thread would wait on forever: the
    driver's own copy of the pipe's write end is closed too, so that it reads end-of-file, finds
    the pool broken, fails what was left and lets ``shutdown`` return."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.kill()
        except (ProcessLookupError, ValueError):  # already gone, or already closed
            pass
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None:
        writer.close()


class LocalEngine:
    name = "local"

    def __init__(self, workers: int | None, batch_size: int) -> None:
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.batch_size = batch_size
        self._pool: Any = None

    def start(self) -> None:
        """Start the worker processes (before any progress bar starts a thread)."""
        if self.workers == 1 or self._pool is not None:
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # fork when this process has no other thread: the workers start at once, with the steps
        # the driver already set up (a spawned worker spends ~1 s of CPU importing and setting
        # up). spawn otherwise: threads (torch, tokenizers, Ray) may hold locks that a forked
        # child would wait on forever.
        method = "fork" if _single_threaded() else "spawn"
        self._pool = ProcessPoolExecutor(
            self.workers, mp_context=mp.get_context(method), initializer=worker_init, initargs=(os.getpid(),)
        )
        # The first task makes the pool start its processes (a fork pool starts all of them,
        # then its own threads). Frozen, the objects a forked worker inherits are left alone by
        # its garbage collector, which would otherwise touch (and so copy) every page of them.
        import gc

        ours = gc.get_freeze_count() == 0  # a caller's own frozen objects stay frozen
        if ours:
            gc.freeze()
        try:
            self._pool.submit(os.getpid).result()
        finally:
            if ours:
                gc.unfreeze()

    def whole_units(self, units: int) -> bool:
        """Whether a segment of ``units`` units runs a task per unit (a worker reads the unit and
        writes its files and marker itself) rather than a task per batch (the driver reads the
        input and writes the outputs): a unit per task when there are enough to keep every worker
        busy, e.g. not one big JSONL file."""
        return self.workers == 1 or units >= 2 * self.workers

    def run_units(self, worker_args: WorkerArgs, tasks: list[UnitTask]) -> Iterator[dict[str, Any]]:
        """Each unit's compact marker, as its worker finishes it (not in input order)."""
        if self.workers == 1:
            worker = SegmentWorker(*worker_args)
            for task in tasks:
                yield run_unit(worker_args, task, worker)
            return
        self.start()
        from concurrent.futures import FIRST_COMPLETED, wait

        todo = deque(tasks)
        running: set[Future[dict[str, Any]]] = set()
        try:
            while todo or running:
                # Two tasks per worker in flight: a worker never waits for the driver.
                while todo and len(running) < 2 * self.workers:
                    running.add(self._pool.submit(run_unit, worker_args, todo.popleft()))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        except BaseException:
            for fut in running:
                fut.cancel()
            raise

    def run(self, worker_args: WorkerArgs, units: list[Unit]) -> Iterator[tuple[int, BatchResult]]:
        """Each batch's results, in input order: the driver reads the input files (a spill's
        parts go by name) and writes the outputs (see :meth:`whole_units`)."""
        if self.workers == 1:
            worker = SegmentWorker(*worker_args)
            for unit in units:
                for batch in unit_batches(unit, self.batch_size):
                    yield unit.index, worker.run(batch)
            return
        self.start()
        submitted = (
            (unit.index, self._pool.submit(fn, worker_args, arg))
            for unit in units
            for fn, arg in batch_tasks(unit, self.batch_size)
        )
        yield from _in_order(submitted, 2 * self.workers, Future.result, Future.cancel)

    def map(self, fn: Callable[[Any], T], args: Iterable[Any]) -> Iterator[T]:
        """``fn(arg)`` for each arg on the worker processes (in this process with one worker),
        results in order: a corpus step's tasks (:class:`~santa.filters.base.CorpusParts`)."""
        if self.workers == 1:
            for a in args:
                yield fn(a)
            return
        self.start()
        submitted = ((None, self._pool.submit(_map_task, fn, a)) for a in args)
        for _, value in _in_order(submitted, 2 * self.workers, Future.result, Future.cancel):
            yield value

    def close(self, abort: bool = False) -> None:
        """Stop the workers: when they are done (``abort=False``), or at once, killing their
        tasks (a run that failed or was stopped: a unit without its marker is redone anyway)."""
        if self._pool is not None:
            if abort:
                _kill_workers(self._pool)
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class _Failed:
    """A step's user error (a SantaError) returned by a Ray actor as data: raised there, Ray would
    wrap it in its own exception, traceback and all, before the driver saw the message."""

    def __init__(self, error: SantaError) -> None:
        self.error = error


class _RayWorker:
    """A Ray actor: one worker process's worth (one CPU), keeping its segment's SegmentWorker
    between tasks, as a local worker process does."""

    def __init__(self) -> None:
        worker_init()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``: a unit, batch or spill part (:func:`run_unit`, :func:`run_batch`,
        :func:`run_part`) or a corpus step's task (:meth:`RayEngine.map`)."""
        try:
            return fn(*args)
        except SantaError as exc:
            return _Failed(exc)


def _raised(result: Any) -> Any:
    if isinstance(result, _Failed):
        raise result.error
    return result


class RayEngine:
    """The same tasks as :class:`LocalEngine` on a Ray cluster (a local one without an address):
    one actor per CPU of the cluster, each holding its segment's SegmentWorker, fed whole units
    (read and written by the actor, on storage every node sees) or, with few units, batches read
    by the driver."""

    name = "ray"

    def __init__(self, address: str | None, num_cpus: int | None, batch_size: int) -> None:
        self.address, self.num_cpus, self.batch_size = address, num_cpus, batch_size
        self._started = False
        self._actors: list[Any] = []

    def _init(self) -> None:
        try:
            import ray
        except ImportError as exc:
            raise PipelineError(
                "engine=ray needs Ray: pip install -c constraints.txt 'ray[data]' (or santa[data])"
            ) from exc
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = self.num_cpus or os.cpu_count() or 1
            os.environ.setdefault("RAY_DEDUP_LOGS", "0")
            ray.init(**kwargs)
            self._started = True
            from santa.signals import reclaim

            reclaim()  # Ray's own SIGTERM handler would kill the driver before it stops its actors

    def start(self) -> None:
        """Connect (or start a local Ray) and start one actor per CPU of the cluster; they live
        for the whole run, so their start-up (imports, the steps' set-up) is paid once per segment
        at most, as a local worker's."""
        if self._actors:
            return
        self._init()
        import ray

        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < 1:  # an actor would wait for a CPU forever
            raise PipelineError(f"the Ray cluster at {self.address or 'this machine'} has no CPU for santa's actors")
        actor = ray.remote(num_cpus=1)(_RayWorker)
        self._actors = [actor.remote() for _ in range(cpus)]

    @property
    def workers(self) -> int:
        self.start()
        return len(self._actors)

    def whole_units(self, units: int) -> bool:
        """As :meth:`LocalEngine.whole_units`, with one worker per actor."""
        return units >= 2 * self.workers

    def run_units(self, worker_args: WorkerArgs, tasks: list[UnitTask]) -> Iterator[dict[str, Any]]:
        """Each unit's compact marker, as its actor finishes it."""
        if not tasks:
            return
        self.start()
        import ray

        args = ray.put(worker_args)
        todo = deque(tasks)
        running: dict[Any, int] = {}  # object ref -> actor
        # One unit per actor at a time: a unit takes seconds to minutes, so the round trip to the
        # driver for the next one costs nothing, and an actor's own queue never holds a unit
        # hostage behind a slow one (an actor runs its tasks one after another) while others idle.
        for i, _ in enumerate(self._actors):
            if todo:
                running[self._actors[i].call.remote(run_unit, args, todo.popleft())] = i
        while running:
            # With a timeout: a signal's Python handler runs only between calls, and ray.wait
            # (unlike ray.get) does not return for one (a unit may take minutes).
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                actor = running.pop(ref)
                marker = _raised(ray.get(ref))
                if todo:
                    running[self._actors[actor].call.remote(run_unit, args, todo.popleft())] = actor
                yield marker

    def run(self, worker_args: WorkerArgs, units: list[Unit]) -> Iterator[tuple[int, BatchResult]]:
        """Each batch's results, in input order (see :meth:`LocalEngine.run`)."""
        if not units:
            return
        self.start()
        import ray

        args = ray.put(worker_args)
        n = len(self._actors)
        # Round robin: results come back in order, so each actor has at most two batches ahead.
        tasks = ((unit.index, fn, arg) for unit in units for fn, arg in batch_tasks(unit, self.batch_size))
        submitted = ((i, self._actors[k % n].call.remote(fn, args, arg)) for k, (i, fn, arg) in enumerate(tasks))
        yield from _in_order(submitted, 2 * n, lambda ref: _raised(ray.get(ref)), None)

    def map(self, fn: Callable[[Any], T], args: Iterable[Any]) -> Iterator[T]:
        """``fn(arg)`` for each arg on the actors (round robin, ``fn`` put in the object store
        once), results in order: a corpus step's tasks (:class:`~santa.filters.base.CorpusParts`)."""
        self.start()
        import ray

        fn_ref = ray.put(fn)
        n = len(self._actors)
        submitted = ((None, self._actors[k % n].call.remote(_map_task, fn_ref, a)) for k, a in enumerate(args))
        for _, value in _in_order(submitted, 2 * n, lambda ref: _raised(ray.get(ref)), ray.cancel):
            yield value

    def close(self, abort: bool = False) -> None:
        """Kill the actors and stop a Ray this engine started (at once either way: an actor's
        task is cut, its unit redone by a resumed run)."""
        if self._actors:
            import ray

            for a in self._actors:
                ray.kill(a)
            self._actors = []
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
