"""Input units and their items: record files (JSONL, JSONL.gz, Parquet), source trees and zip
archives, and the engine's own spill files between steps. A record file is read by
:func:`santa.data.records.raw_records`, the one reader: JSONL lines reach the workers unparsed and
are parsed there (:func:`parse_json_line`, re-exported here for them).

Every item carries a stable id (unit index << 32 | position in the unit) and a location
("file:line", "file: row N", "archive!member") so that a corrupt line can be reported where it
is, and both engines number records identically without talking to each other.
"""

from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from santa.data.records import (
    EXTENSION_LANGUAGE,
    RECORD_SUFFIXES,
    is_record_file,
    parse_json_line,
    raw_records,
    record_files,
    stack_record,
)

__all__ = [
    "ID_SHIFT",
    "Item",
    "Unit",
    "denormalise",
    "iter_unit",
    "normalise",
    "pack_record",
    "parse_json_line",
    "read_spill",
    "resolve_units",
    "unpack_record",
]

# (id, where, record or None, error message or None); the record may still be bytes: a JSONL
# line (parsed by the worker, see parse_json_line) or a spilled record (see unpack_record).
Item = tuple[int, str, "dict[str, Any] | bytes | None", "str | None"]

ID_SHIFT = 32
# Fields santa's records have under their own names; a source's fields of the same name are kept
# aside and written back out unchanged.
NORMALISED = ("id", "repo", "path", "stars")
_INTERNAL = ("_orig", "_where", "_prepared")


@dataclass(frozen=True)
class Unit:
    index: int
    path: str
    kind: str  # "records" | "tree" | "zip" | "spill"


def _has_sources(d: Path) -> bool:
    return any(p.suffix in EXTENSION_LANGUAGE for p in d.rglob("*") if p.is_file())


def resolve_units(sources: str | Path | list[str | Path]) -> list[Unit]:
    """One unit per record file (a directory's record files, a glob's matches), per source tree
    (a directory holding no record files but .py/.java/.js files) and per .zip archive."""
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    units: list[Unit] = []
    for src in sources:
        p = Path(os.path.expanduser(str(src)))
        if p.is_dir() and not any(is_record_file(f) for f in p.rglob("*") if f.is_file()):
            if not _has_sources(p):
                raise FileNotFoundError(
                    f"no record files ({', '.join(RECORD_SUFFIXES)}) and no source files "
                    f"({', '.join(sorted(EXTENSION_LANGUAGE))}) under directory {p}"
                )
            units.append(Unit(len(units), str(p), "tree"))
            continue
        if p.is_file() and p.suffix == ".zip":
            units.append(Unit(len(units), str(p), "zip"))
            continue
        for f in record_files(src):  # resolves dirs and globs; FileNotFoundError names the path
            kind = "zip" if f.suffix == ".zip" else "records"
            units.append(Unit(len(units), str(f), kind))
    if not units:
        raise FileNotFoundError(f"no input files in {', '.join(map(str, sources))}")
    return units


def iter_unit(unit: Unit) -> Iterator[Item]:
    base = unit.index << ID_SHIFT
    if unit.kind == "spill":
        yield from _spill(unit.path)
    elif unit.kind == "records":
        # Stable ids: the unit's index, then the line (JSONL) or row (Parquet) in the file.
        for pos, where, raw, error in raw_records(Path(unit.path)):
            yield base + pos, where, raw, error
    elif unit.kind == "tree":
        yield from _tree(Path(unit.path), base)
    elif unit.kind == "zip":
        yield from _zip(Path(unit.path), base)
    else:
        raise ValueError(f"unknown unit kind {unit.kind!r}")


def _source_record(data: bytes, lang: str, repo: str, path: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 ({exc.reason} at byte {exc.start})"
    return stack_record(text, data, lang, repo, path), None


def _tree(root: Path, base: int) -> Iterator[Item]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in EXTENSION_LANGUAGE)
    for n, f in enumerate(files, 1):
        rel = f.relative_to(root).as_posix()
        try:
            data = f.read_bytes()
        except OSError as exc:
            yield base + n, str(f), None, f"unreadable ({exc})"
            continue
        rec, err = _source_record(data, EXTENSION_LANGUAGE[f.suffix], root.name, rel)
        yield base + n, str(f), rec, err


def _zip(path: Path, base: int) -> Iterator[Item]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield base + 1, str(path), None, f"not a readable zip archive ({exc})"
        return
    with zf:
        names = sorted(
            i.filename for i in zf.infolist() if not i.is_dir() and Path(i.filename).suffix in EXTENSION_LANGUAGE
        )
        for n, name in enumerate(names, 1):
            where = f"{path}!{name}"
            try:
                data = zf.read(name)
            except (zipfile.BadZipFile, OSError, zlib.error, KeyError) as exc:
                yield base + n, where, None, f"unreadable member ({exc})"
                continue
            rec, err = _source_record(data, EXTENSION_LANGUAGE[Path(name).suffix], path.stem, name)
            yield base + n, where, rec, err


# Spilled records are pickled and compressed one by one, in the worker that made them (the driver
# only moves the bytes), and decompressed in the worker that reads them back. LZ4: ~2.1x on code
# at ~0.5 GB/s (zstd's fastest level gives ~3x at a third of the speed, which cost `final` ~8 %
# of its CPU for three spills), so the spills take about half the input's size on disk.
_CODEC: Any = None


def _codec() -> Any:
    global _CODEC
    if _CODEC is None:
        import pyarrow as pa

        _CODEC = pa.Codec("lz4")
    return _CODEC


def pack_record(rec: dict[str, Any]) -> bytes:
    """A record as the spill holds it: its pickle's length (8 bytes, little-endian), then the
    pickle, LZ4-compressed (frame format)."""
    raw = pickle.dumps(rec, protocol=5)
    return len(raw).to_bytes(8, "little") + _codec().compress(raw, asbytes=True)


def unpack_record(blob: bytes) -> dict[str, Any]:
    size = int.from_bytes(blob[:8], "little")
    return pickle.loads(_codec().decompress(memoryview(blob)[8:], size, asbytes=True))


def _spill(path: str) -> Iterator[Item]:
    """The engine's own spill, a directory of parts: records stay packed (the worker unpacks them)."""
    for part in sorted(Path(path).glob("part-*.parquet")):
        yield from read_spill(str(part))


def read_spill(path: str) -> Iterator[Item]:
    """The items of one spill part."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, pre_buffer=False)
    for batch in pf.iter_batches(batch_size=512, columns=["id", "where", "record"], use_threads=False):
        ids, wheres, blobs = (batch.column(k).to_pylist() for k in range(3))
        for rid, where, blob in zip(ids, wheres, blobs):
            yield rid, where or "", blob, None


def _first(raw: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if raw.get(k) is not None:
            return raw[k]
    return None


def normalise(raw: dict[str, Any], rid: int, where: str) -> dict[str, Any]:
    """santa's record (base.py's contract) from a source record; the source's own fields stay."""
    rec = dict(raw)
    orig = {k: raw[k] for k in NORMALISED if k in raw}
    if orig:
        rec["_orig"] = orig
    rec["id"] = rid
    rec["_where"] = where
    rec["repo"] = _first(raw, "max_stars_repo_name", "repo", "repo_name")
    rec["path"] = _first(raw, "max_stars_repo_path", "path")
    stars = raw["max_stars_count"] if "max_stars_count" in raw else raw.get("stars")
    try:
        rec["stars"] = None if stars is None else int(stars)
    except (TypeError, ValueError):
        rec["stars"] = None  # not a number: as unknown, which the stars step refuses to guess
    if not raw.get("lang"):
        suffix = os.path.splitext(str(rec["path"] or ""))[1]
        rec["lang"] = EXTENSION_LANGUAGE.get(suffix, "unknown")
    return rec


def denormalise(rec: dict[str, Any]) -> dict[str, Any]:
    """The record as the source had it (content possibly redacted), for clean shards and rejects."""
    out = {k: v for k, v in rec.items() if k not in NORMALISED and k not in _INTERNAL}
    out.update(rec.get("_orig", {}))
    return out
