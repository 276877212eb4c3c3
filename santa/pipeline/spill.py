"""The spill between two corpus steps: a segment's survivors of one input file, written by the
workers as Parquet parts (records packed and compressed; ids, location and prepared values as
columns a corpus step reads without unpacking), and :class:`SpilledRecords`, what a corpus step
iterates over, and the engine's workers read in parts (:class:`SpillPart`: a run of consecutive
part files) when the step runs its work there (``map_parts``, ``map``: see
:class:`~santa.filters.base.CorpusParts`)."""

from __future__ import annotations

import functools
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from santa.filters.base import CorpusPart, Record
from santa.pipeline.inputs import ID_SHIFT, pack_record, unpack_record
from santa.pipeline.parquet import tmp_name

_SPILL_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("where", pa.string()),
        ("lang", pa.string()),
        ("repo", pa.string()),
        ("path", pa.string()),
        ("prepared", pa.large_binary()),
        ("record", pa.large_binary()),
    ]
)
# The spill's small columns are compressed by Parquet; the records are compressed already.
_SPILL_COMPRESSION = {
    "id": "zstd",
    "where": "zstd",
    "lang": "zstd",
    "repo": "zstd",
    "path": "zstd",
    "prepared": "none",
    "record": "none",
}


def spill_dir(root: Path, segment: int, unit: int) -> Path:
    """Where a segment's survivors of one input file are spilled: a directory of parts."""
    return root / f"s{segment}-u{unit:05d}.spill"


def spill_parts(path: str | Path) -> list[Path]:
    """A spill directory's parts, in input order (named by their first record's id)."""
    return sorted(Path(path).glob("part-*.parquet"))


def write_spill_part(root: Path, segment: int, records: list[Record]) -> Path:
    """Spill one batch's survivors (all of one input file), from the worker that processed them:
    the driver never reads, pickles or writes the records between two corpus steps. The part is
    named by its first id, so the parts sort in input order whichever worker wrote them."""
    first = int(records[0]["id"])
    d = spill_dir(root, segment, first >> ID_SHIFT)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"part-{first:020d}.parquet"
    tmp = tmp_name(path)
    try:
        pq.write_table(spill_table(records), tmp, compression=_SPILL_COMPRESSION, use_dictionary=["lang", "repo"])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def spill_table(records: list[Record]) -> pa.Table:
    """Survivors of a segment, each packed whole (santa's fields and the source's: see
    :func:`~santa.pipeline.inputs.pack_record`), with the fields a corpus step reads without
    unpacking them: the id, location, language, and ``_prepared`` (pickled on its own)."""

    def text(v: Any) -> str | None:
        return None if v is None else str(v)

    prepared = [r.pop("_prepared", None) for r in records]
    return pa.table(
        {
            "id": pa.array([r["id"] for r in records], pa.int64()),
            "where": pa.array([text(r.get("_where")) for r in records], pa.string()),
            "lang": pa.array([text(r.get("lang")) for r in records], pa.string()),
            "repo": pa.array([text(r.get("repo")) for r in records], pa.string()),
            "path": pa.array([text(r.get("path")) for r in records], pa.string()),
            "prepared": pa.array(
                [None if p is None else pickle.dumps(p, protocol=5) for p in prepared], pa.large_binary()
            ),
            "record": pa.array([pack_record(r) for r in records], pa.large_binary()),
        },
        schema=_SPILL_SCHEMA,
    )


T = TypeVar("T")
# A task over the spill reads consecutive part files until it has at least this many records:
# a part is one batch (~256 records), too small a task for a process pool or Ray.
_TASK_ROWS = 4096


class MapEngine(Protocol):
    """What the spill needs of an engine: run ``fn(arg)`` for each arg on its workers."""

    def map(self, fn: Callable[[Any], T], args: Iterable[Any]) -> Iterator[T]: ...


def _records_of(batch: pa.RecordBatch | pa.Table, content: bool) -> Iterator[Record]:
    cols = {name: batch.column(name).to_pylist() for name in batch.schema.names}
    for j in range(batch.num_rows):
        if content:
            rec = unpack_record(cols["record"][j])
        else:
            rec = {
                "id": cols["id"][j],
                "_where": cols["where"][j],
                "lang": cols["lang"][j],
                "repo": cols["repo"][j],
                "path": cols["path"][j],
            }
        p = cols["prepared"][j]
        if p is not None:
            rec["_prepared"] = pickle.loads(p)
        yield rec


_LIGHT = ("id", "where", "lang", "repo", "path", "prepared")


class SpillPart:
    """Consecutive spill part files as one :class:`~santa.filters.base.CorpusPart`: what a task
    on a worker reads (it is sent the paths, and reads only the columns it is asked for)."""

    def __init__(self, index: int, paths: list[str]) -> None:
        self.index = index
        self.paths = paths

    def _read(self, columns: list[str]) -> pa.Table:
        tables = [pq.read_table(p, columns=columns, use_threads=False) for p in self.paths]
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def ids(self) -> np.ndarray:
        return self._read(["id"]).column("id").to_numpy().astype(np.int64, copy=False)

    def prepared(self) -> list[Any]:
        col = self._read(["prepared"]).column("prepared").to_pylist()
        return [None if p is None else pickle.loads(p) for p in col]

    def records(self, rows: Sequence[int] | np.ndarray | None = None, content: bool = True) -> list[Record]:
        columns = [*_LIGHT] + ["record"] * content
        if rows is None:
            return list(_records_of(self._read(columns), content))
        want = np.asarray(rows, dtype=np.int64)
        if len(want) > 1 and not (want[1:] > want[:-1]).all():  # any order: the whole run at once
            return list(_records_of(self._read(columns).take(pa.array(want)), content))
        # File by file, reading only the files that hold a wanted row: the task holds one file's
        # packed records at a time, not the run's.
        out: list[Record] = []
        first = 0
        for p in self.paths:
            n = pq.ParquetFile(p).metadata.num_rows
            lo, hi = np.searchsorted(want, [first, first + n])
            if hi > lo:
                table = pq.read_table(p, columns=columns, use_threads=False)
                out.extend(_records_of(table.take(pa.array(want[lo:hi] - first)), content))
            first += n
        return out


def _part_locations(wanted_path: str, part: CorpusPart) -> pa.Table | None:
    """(id, repo, path) of the part's records whose ids are in the sorted array at ``wanted_path``."""
    assert isinstance(part, SpillPart)
    wanted = np.load(wanted_path, mmap_mode="r")
    t = part._read(["id", "repo", "path"])
    ids = t.column("id").to_numpy()
    if not len(wanted):
        return None
    pos = np.searchsorted(wanted, ids).clip(0, len(wanted) - 1)
    mask = wanted[pos] == ids
    return t.filter(pa.array(mask)) if mask.any() else None


class SpilledRecords:
    """Every record that reached a corpus step, read back from the spill files; re-iterable.

    ``content=False`` (a step whose ``reads_content`` is False) yields records of only their id,
    ``_where``, lang, repo, path and ``_prepared``, without unpacking them; :meth:`select` gives
    whole records of chosen ids. ``scratch``: a directory the step may write temporary files to.

    It is also a :class:`~santa.filters.base.CorpusParts`: ``map_parts`` and ``map`` run tasks
    on ``engine``'s workers (in this process without one)."""

    _LIGHT = _LIGHT

    def __init__(
        self,
        paths: list[Path],
        content: bool = True,
        scratch: Path | None = None,
        engine: MapEngine | None = None,
        task_rows: int = _TASK_ROWS,
    ) -> None:
        self.paths = paths
        self.content = content
        self.scratch = scratch
        self.engine = engine
        self.task_rows = task_rows

    def parts(self) -> list[SpillPart]:
        """The spill as tasks' parts: runs of consecutive part files of >= ``task_rows`` records."""
        out: list[SpillPart] = []
        run: list[str] = []
        rows = 0
        for p in self.paths:
            run.append(str(p))
            rows += pq.ParquetFile(p).metadata.num_rows
            if rows >= self.task_rows:
                out.append(SpillPart(len(out), run))
                run, rows = [], 0
        if run:
            out.append(SpillPart(len(out), run))
        return out

    def map(self, fn: Callable[[Any], T], args: Iterable[Any]) -> Iterator[T]:
        if self.engine is None:
            return (fn(a) for a in args)
        return self.engine.map(fn, args)

    def map_parts(self, fn: Callable[[CorpusPart], T]) -> Iterator[T]:
        return self.map(fn, self.parts())

    def _batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        for p in self.paths:
            pf = pq.ParquetFile(p, pre_buffer=False)
            yield from pf.iter_batches(batch_size=1024, columns=columns, use_threads=False)

    @staticmethod
    def _records(batch: pa.RecordBatch, content: bool) -> Iterator[Record]:
        return _records_of(batch, content)

    def __iter__(self) -> Iterator[Record]:
        columns = [*self._LIGHT] + ["record"] * self.content
        for batch in self._batches(columns):
            yield from self._records(batch, self.content)

    def select(self, ids: Any, content: bool = True) -> Iterator[Record]:
        """The records of the given ids (in spill order), whole unless ``content=False``; the
        others are not unpacked."""
        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        for batch in self._batches([*self._LIGHT] + ["record"] * content):
            mask = np.isin(batch.column(0).to_numpy(), wanted)
            if mask.any():
                yield from self._records(batch.filter(pa.array(mask)), content)

    def locations(self, ids: Any) -> tuple[Any, list[Any], list[Any]]:
        """(sorted ids, their repos, their paths) of the given ids that are in the spill, found
        by tasks over the parts (the wanted ids go to them as a scratch file)."""
        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        parts: list[pa.Table] = []
        if len(wanted):
            with tempfile.TemporaryDirectory(prefix="locations-", dir=self.scratch) as tmp:
                path = os.path.join(tmp, "wanted.npy")
                np.save(path, wanted)
                parts = [t for t in self.map_parts(functools.partial(_part_locations, path)) if t is not None]
        if not parts:
            return np.zeros(0, dtype=np.int64), [], []
        t = pa.concat_tables(parts)
        order = np.argsort(t.column("id").to_numpy(), kind="stable")
        t = t.take(pa.array(order))
        return t.column("id").to_numpy(), t.column("repo").to_pylist(), t.column("path").to_pylist()

    def __len__(self) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.paths)
