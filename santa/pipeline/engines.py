"""Engines: run a segment's :class:`~santa.pipeline.worker.SegmentWorker` over the input units and
yield ``(unit index, BatchResult)`` in input order; :class:`LocalEngine` on this machine's
processes, :class:`RayEngine` on Ray Data (a local or a remote cluster)."""

from __future__ import annotations

import os
import pickle
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from santa.errors import SantaError
from santa.pipeline.inputs import Unit, iter_unit
from santa.pipeline.spec import PipelineError
from santa.pipeline.spill import spill_parts
from santa.pipeline.worker import BatchResult, SegmentWorker, batches, run_batch, run_part, run_unit, worker_init

# Threads that are safe across fork: jemalloc (pyarrow's allocator, which starts a purging thread
# when imported) takes its locks in its own pthread_atfork handlers and restarts the thread in the
# child when needed.
_FORK_SAFE_THREADS = frozenset({"jemalloc_bg_thd"})
T = TypeVar("T")


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


def _release_memory() -> None:
    """Give back to the system what a task freed: Arrow's pool and glibc's malloc keep freed
    pages for reuse, so a worker that ran a corpus step's tasks (reading spill parts, sorting
    band keys) would hold them through the segments after it."""
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
        _release_memory()


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
        self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context(method), initializer=worker_init)
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

    def run(self, worker_args: tuple, units: list[Unit]) -> Iterator[tuple[int, BatchResult]]:
        if self.workers == 1:
            worker = SegmentWorker(*worker_args)
            for unit in units:
                for batch in batches(iter_unit(unit), self.batch_size):
                    yield unit.index, worker.run(batch)
            return
        self.start()
        window: deque = deque()
        # With enough input files to go round and a segment that spills (so results are small),
        # each worker reads whole input files: the driver does not decompress, split or send them.
        whole_units = worker_args[1].prepare_for is not None and len(units) >= 2 * self.workers

        def tasks(unit: Unit) -> Iterator[tuple[Any, Any]]:
            if unit.kind == "spill":  # a part per task, read by the worker
                for part in spill_parts(unit.path):
                    yield run_part, str(part)
            elif whole_units:
                yield run_unit, (unit, self.batch_size)
            else:
                for batch in batches(iter_unit(unit), self.batch_size):
                    yield run_batch, batch

        def results(idx: int, fut: Any) -> Iterator[tuple[int, BatchResult]]:
            res = fut.result()
            for r in res if isinstance(res, list) else [res]:
                yield idx, r

        try:
            for unit in units:
                for fn, arg in tasks(unit):
                    window.append((unit.index, self._pool.submit(fn, worker_args, arg)))
                    if len(window) >= 2 * self.workers:
                        yield from results(*window.popleft())
            while window:
                yield from results(*window.popleft())
        except BaseException:
            for _, fut in window:
                fut.cancel()
            raise

    def map(self, fn: Callable[[Any], T], args: Iterable[Any]) -> Iterator[T]:
        """``fn(arg)`` for each arg on the worker processes (in this process with one worker),
        results in order: a corpus step's tasks (:class:`~santa.filters.base.CorpusParts`)."""
        if self.workers == 1:
            for a in args:
                yield fn(a)
            return
        self.start()
        window: deque = deque()
        try:
            for a in args:
                window.append(self._pool.submit(_map_task, fn, a))
                if len(window) >= 2 * self.workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        except BaseException:
            for fut in window:
                fut.cancel()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _ray_read(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    unit = pickle.loads(row["unit"])
    for item in iter_unit(unit):
        yield {"unit": unit.index, "item": pickle.dumps(item, protocol=5)}


_ERROR_UNIT = -1


class _RaySegment:
    """Ray Data actor: one SegmentWorker per actor, fed batches of pickled items."""

    def __init__(self, worker_args: tuple) -> None:
        worker_init()
        self.worker = SegmentWorker(*worker_args)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        units = [int(u) for u in batch["unit"]]
        items = [pickle.loads(b) for b in batch["item"]]
        out_units, out = [], []
        start = 0
        try:
            # A Ray batch may straddle two units; results are kept per unit, in order.
            for i in range(1, len(units) + 1):
                if i == len(units) or units[i] != units[start]:
                    out_units.append(units[start])
                    out.append(pickle.dumps(self.worker.run(items[start:i]), protocol=5))
                    start = i
        except SantaError as exc:
            # The user's error travels as data: raised, Ray would wrap it in its own exceptions
            # (and retry the task) before the driver saw the message.
            out_units, out = [_ERROR_UNIT], [pickle.dumps(exc)]
        return {"unit": np.array(out_units, dtype=np.int64), "result": np.array(out, dtype=object)}


def _ray_task(fn: Callable[[Any], Any], arg: Any) -> tuple[bool, Any]:
    try:
        return True, _map_task(fn, arg)
    except SantaError as exc:  # as data, as in _RaySegment: Ray would wrap it (and retry)
        return False, exc


class RayEngine:
    name = "ray"

    def __init__(self, address: str | None, num_cpus: int | None, batch_size: int) -> None:
        self.address, self.num_cpus, self.batch_size = address, num_cpus, batch_size
        self._started = False

    def _init(self) -> int:
        try:
            import ray
        except ImportError as exc:
            raise PipelineError(
                "engine=ray needs Ray Data: pip install -c constraints.txt 'ray[data]' (or santa[data])"
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
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def start(self) -> None:
        """Ray starts its actors per segment."""

    def run(self, worker_args: tuple, units: list[Unit]) -> Iterator[tuple[int, BatchResult]]:
        if not units:
            return
        cpus = self._init()
        import ray

        # The decisions travel as their file's path, as on the local engine: every actor maps the
        # same file (the output directory, where the actors also write their spill parts, is on
        # storage every node sees).
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # results per unit, in input order
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"unit": pickle.dumps(u)} for u in units], override_num_blocks=len(units))
        # One actor per CPU, each asking a little less than a CPU so that the reading tasks
        # always find room: actors holding every CPU would starve the reads and stall the run.
        ds = ds.flat_map(_ray_read, num_cpus=0.25)
        ds = ds.map_batches(
            _RaySegment,
            fn_constructor_args=(worker_args,),
            batch_size=self.batch_size,
            batch_format="numpy",
            concurrency=cpus,
            num_cpus=max(0.1, (cpus - 0.5) / cpus),
        )
        for row in ds.iter_rows():
            result = pickle.loads(row["result"])
            if int(row["unit"]) == _ERROR_UNIT:
                raise result
            yield int(row["unit"]), result

    def map(self, fn: Callable[[Any], T], args: Iterable[Any]) -> Iterator[T]:
        """``fn(arg)`` for each arg as Ray tasks (one CPU each, ``fn`` put in the object store
        once), results in order."""
        cpus = self._init()
        import ray

        task = ray.remote(num_cpus=1)(_ray_task)
        fn_ref = ray.put(fn)
        window: deque = deque()

        def result(ref: Any) -> Any:
            ok, value = ray.get(ref)
            if not ok:
                raise value
            return value

        try:
            for a in args:
                window.append(task.remote(fn_ref, a))
                if len(window) >= 2 * cpus:
                    yield result(window.popleft())
            while window:
                yield result(window.popleft())
        except BaseException:
            for ref in window:
                ray.cancel(ref)
            raise

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
