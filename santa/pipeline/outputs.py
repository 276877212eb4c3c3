"""Per-unit outputs and markers: :class:`UnitWriter` collects one input file's batch results of a
segment, writes its Parquet files, then its marker (counts, stats, notes), last: a unit with a
marker is done, and a resumed run skips it.

A worker that runs a whole unit (:func:`~santa.pipeline.worker.run_unit`) writes them itself and
sends the driver only the marker; with fewer units than workers need, the driver writes them from
the batches' results."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from santa.pipeline.parquet import write_json, write_table
from santa.pipeline.plan import Segment
from santa.pipeline.spill import spill_dir

if TYPE_CHECKING:  # the worker writes a unit's files with this module: no import cycle at run time
    from santa.pipeline.worker import BatchResult

# Rows of clean data / rejects per Parquet file: bounds the memory one input unit needs.
_FLUSH_ROWS = 20_000
_FLUSH_BYTES = 256 << 20


class UnitWriter:
    """Collects one unit's batch results; writes its files, then its marker (counts) last."""

    def __init__(self, work: Path, segment: Segment, unit: int, last: bool) -> None:
        self.work, self.segment, self.unit, self.last = work, segment, unit, last
        self.tag = f"s{segment.index}-u{unit:05d}"
        # Leftovers of an interrupted attempt, files and half-written temporaries (a worker
        # killed mid-write); its spill directory was emptied before the segment started.
        for stale in [*self._dir().glob(f"{self.tag}.*"), *self._dir().glob(f".{self.tag}.*")]:
            if stale.is_file():
                stale.unlink()
        self.marker_counts: dict[str, dict[str, list[int]]] = {}
        self.stats: dict[str, dict[str, list[float]]] = {}
        self.notes: dict[str, Counter[str]] = {}
        self.errors: list[str] = []
        self.files: dict[str, list[str]] = {"data": [], "rejects": [], "annotations": []}
        self.buffers: dict[str, list[pa.Table]] = {"data": [], "rejects": [], "annotations": []}
        self.buffer_bytes = 0
        self.kept = 0

    def _dir(self) -> Path:
        return self.work / "units"

    def add(self, res: BatchResult) -> None:
        for step, langs in res.counts.items():
            mine = self.marker_counts.setdefault(step, {})
            for lang, c in langs.items():
                m = mine.setdefault(lang, [0, 0, 0, 0])
                for i in range(4):
                    m[i] += c[i]
        for step, step_stats in res.stats.items():
            for lang, values in step_stats.items():
                self.stats.setdefault(step, {}).setdefault(lang, []).extend(values)
        for step, notes in res.notes.items():
            self.notes.setdefault(step, Counter()).update(notes)
        self.errors.extend(res.errors)
        self.kept += res.n_kept
        if res.kept is not None:  # the last segment's clean rows (the others are spilled by the workers)
            self.buffers["data"].append(res.kept)
            self.buffer_bytes += res.kept.nbytes
        for kind, table in res.tables.items():
            self.buffers[kind].append(table)
            self.buffer_bytes += table.nbytes
        if (
            self.buffer_bytes >= _FLUSH_BYTES
            or max(sum(t.num_rows for t in b) for b in self.buffers.values()) >= _FLUSH_ROWS
        ):
            self._flush()

    def _write(self, kind: str, table: pa.Table) -> None:
        name = f"{self.tag}.{kind}-{len(self.files[kind]):03d}.parquet"
        write_table(self._dir() / name, table)
        self.files[kind].append(name)

    def _flush(self) -> None:
        for kind, tables in self.buffers.items():
            if not tables:
                continue
            try:
                merged = [pa.concat_tables(tables, promote_options="permissive")]
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                merged = tables  # a field of different types in two batches: one file each
            for table in merged:
                self._write(kind, table)
            self.buffers[kind] = []
        self.buffer_bytes = 0

    def finish(self) -> dict[str, Any]:
        self._flush()
        # The workers wrote the survivors' parts; the marker, written last, vouches for them.
        spill = spill_dir(self._dir(), self.segment.index, self.unit).name if self.kept and not self.last else None
        marker = {
            "segment": self.segment.index,
            "unit": self.unit,
            "kept": self.kept,
            "spill": spill,
            "files": self.files,
            "counts": self.marker_counts,
            "stats": self.stats,
            "notes": {k: dict(v) for k, v in self.notes.items()},
            "errors": self.errors,
        }
        write_json(self._dir() / f"{self.tag}.done.json", marker)
        return marker

    def abort(self) -> None:
        """The files written so far go (a unit without a marker is done again, and its files and
        spill directory are cleared first anyway: this only frees the space sooner)."""
        for kind in self.files.values():
            for name in kind:
                (self._dir() / name).unlink(missing_ok=True)
        self.files = {k: [] for k in self.files}
        self.buffers = {k: [] for k in self.buffers}


def load_marker(work: Path, segment: int, unit: int) -> dict[str, Any] | None:
    path = work / "units" / f"s{segment}-u{unit:05d}.done.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def compact_marker(marker: dict[str, Any] | None) -> dict[str, Any] | None:
    """A marker whose statistics (one per file per step) are flat arrays of doubles: 8 bytes a
    value where a list of Python floats costs 32, for every marker the report reads at once."""
    if marker is not None:
        from array import array

        marker["stats"] = {
            step: {lang: array("d", v) for lang, v in langs.items()} for step, langs in marker["stats"].items()
        }
    return marker
