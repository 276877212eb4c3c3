"""The Stack-style record files: what a record is (its fields, its language, its id) and the one
reader of JSONL(.gz) and Parquet record files. :func:`raw_records` reads a file (its format, its
lines or rows, where each is, a damaged file's error) and :func:`parse_json_line` parses a JSONL
line; :class:`RecordReader` (``read_records``) gives checked records from them to the corpus
stage and the tests, and the pipeline's inputs (:mod:`santa.pipeline.inputs`) hand the same items
to its workers, which parse the lines themselves. The demo corpus builder
(:mod:`santa.data.corpus`) writes such files."""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from santa.errors import SantaError

__all__ = [
    "EXTENSION_LANGUAGE",
    "LANGUAGES",
    "RECORD_SUFFIXES",
    "CorpusError",
    "RawRecord",
    "RecordReader",
    "git_blob_sha1",
    "is_record_file",
    "parse_json_line",
    "raw_records",
    "read_records",
    "record_files",
    "stable_unit",
    "stack_record",
]


class CorpusError(SantaError, ValueError):
    """Input records or sources that cannot make a corpus; the message names the file and line."""


# The Stack's language names and the extensions that count as that language here.
LANGUAGES: dict[str, tuple[str, ...]] = {
    "Python": (".py",),
    "Java": (".java",),
    "JavaScript": (".js", ".mjs", ".cjs"),
}
# The language of a source file, by its extension (source trees, zips, records without "lang").
EXTENSION_LANGUAGE: dict[str, str] = {ext: lang for lang, exts in LANGUAGES.items() for ext in exts}
RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".parquet")


def git_blob_sha1(data: bytes) -> str:
    """The id git gives this content (The Stack's ``hexsha``)."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def stable_unit(*parts: object) -> float:
    """A number in [0, 1) from a hash of ``parts`` that is the same on every machine and run
    (Python's ``hash`` is salted per process, so it cannot decide a split)."""
    key = "\0".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def stack_record(text: str, data: bytes, lang: str, repo: str, path: str) -> dict[str, Any]:
    """A source file as a record with The Stack's fields (local code has no stars metadata)."""
    return {
        "hexsha": git_blob_sha1(data),
        "size": len(data),
        "ext": path.rsplit(".", 1)[-1],
        "lang": lang,
        "max_stars_repo_path": path,
        "max_stars_repo_name": repo,
        # Local code has no GitHub stars; The Stack leaves the field empty too when unknown.
        "max_stars_count": None,
        "content": text,
    }


# --------------------------------------------------------------------------------------------
# Reading records

# A record file's position, where it is ("file:line" or "file: row N"), what is there (a JSONL
# line still as bytes, see parse_json_line; a Parquet row as a dict; None on an error) and the
# error, if any.
RawRecord = tuple[int, str, "dict[str, Any] | bytes | None", "str | None"]


def is_record_file(path: Path) -> bool:
    return path.name.endswith(RECORD_SUFFIXES)


def record_files(source: str | Path) -> list[Path]:
    """The files of a record source: the file itself, every record file under a directory
    (sorted), or a glob pattern's matches (sorted). A missing path, a directory without record
    files or a pattern matching nothing raise FileNotFoundError naming it."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and is_record_file(p))
        if not files:
            raise FileNotFoundError(f"no record files ({', '.join(RECORD_SUFFIXES)}) under directory {path}")
        return files
    if path.is_file():
        return [path]
    text = str(source)
    if glob.has_magic(text):
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
        files = [p for p in matches if p.is_file()]
        if not files:
            raise FileNotFoundError(f"no files match the pattern {text}")
        return files
    raise FileNotFoundError(f"no such file or directory: {path}")


def raw_records(path: Path, *, require: str | None = None) -> Iterator[RawRecord]:
    """What a record file holds, in file order, as :data:`RawRecord` items: Parquet (by its
    suffix) row by row, anything else as JSON Lines (gzip-compressed if it ends in ``.gz``).

    JSONL lines come unparsed, so that the parsing (:func:`parse_json_line`) can happen where
    the work is: the pipeline's driver reads every input and hands raw lines to its workers (the
    JSON work was ~20 % of the driver's CPU). Blank lines are skipped. A damaged file gives one
    error at the position after the last one read and ends (what came before is fine, the rest
    is lost). ``require``: a Parquet file without this column gives one error for the file."""
    if path.name.endswith(".parquet"):
        return _parquet_rows(path, require)
    return _jsonl_lines(path)


def _jsonl_lines(path: Path) -> Iterator[RawRecord]:
    opener = gzip.open if path.name.endswith(".gz") else open
    lineno = 0
    try:
        with opener(path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    yield lineno, f"{path}:{lineno}", line, None
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt gzip
        yield (
            lineno + 1,
            f"{path}:{lineno + 1}",
            None,
            f"unreadable after line {lineno} ({exc}); the rest of the file is lost",
        )


def _parquet_rows(path: Path, require: str | None) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        # No Arrow thread pools (in the pipeline's driver they would keep a later run in the same
        # process from forking its workers, see pipeline.engines.LocalEngine); turning the rows
        # into Python objects, one thread anyway, costs more than decoding them.
        pf = pq.ParquetFile(path, pre_buffer=False)
        names = pf.schema_arrow.names
        if require is not None and require not in names:
            yield 0, str(path), None, f"Parquet file has no {require!r} column (columns: {names[:10]})"
            return
        for batch in pf.iter_batches(batch_size=1024, use_threads=False):
            for rec in batch.to_pylist():
                row += 1
                yield row, f"{path}: row {row}", rec, None
    except (pa.ArrowException, OSError) as exc:
        yield (
            row + 1,
            f"{path}: row {row + 1}",
            None,
            f"unreadable Parquet after row {row} ({exc}); the rest of the file is lost",
        )


def parse_json_line(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) or (None, error) for one line of a JSONL file: not UTF-8, not JSON, or not
    a JSON object."""
    try:
        rec = json.loads(line)
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 ({exc.reason} at byte {exc.start})"
    except ValueError as exc:
        return None, f"malformed JSON line ({exc})"
    if not isinstance(rec, dict):
        return None, f"expected a JSON object, got {type(rec).__name__}"
    return rec, None


class RecordReader:
    """Iterator over the records of JSONL(.gz) and Parquet files, in file order.

    ``strict=True`` raises on the first bad line (naming file and line); ``strict=False`` skips
    it and counts it in ``errors``, keeping the first messages in ``error_messages``.
    """

    def __init__(self, source: str | Path | Iterable[str | Path], *, strict: bool = True):
        sources = [source] if isinstance(source, (str, Path)) else list(source)
        self.files: list[Path] = [f for s in sources for f in record_files(s)]
        self.strict = strict
        self.errors = 0
        self.error_messages: list[str] = []
        self.records = 0
        self._it = self._generate()

    def __iter__(self) -> RecordReader:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._it)

    def _fail(self, message: str) -> None:
        if self.strict:
            raise CorpusError(message)
        self.errors += 1
        if len(self.error_messages) < 20:
            self.error_messages.append(message)

    def _generate(self) -> Iterator[dict[str, Any]]:
        for path in self.files:
            for _, where, raw, error in raw_records(path, require="content"):
                if isinstance(raw, bytes):
                    raw, error = parse_json_line(raw)
                if error is not None or raw is None:
                    self._fail(f"{where}: {error}")
                elif "content" not in raw:
                    self._fail(f"{where}: record has no 'content' field (fields: {sorted(raw)[:10]})")
                elif not isinstance(raw["content"], str):
                    self._fail(f"{where}: 'content' is {type(raw['content']).__name__}, not a string")
                else:
                    self.records += 1
                    yield raw


def read_records(source: str | Path | Iterable[str | Path], *, strict: bool = True) -> RecordReader:
    """Records from a JSONL, JSONL.gz or Parquet file, a directory (all such files under it,
    sorted), a glob pattern, or a list of any of these. Missing paths raise FileNotFoundError at
    once; see :class:`RecordReader` for bad lines."""
    return RecordReader(source, strict=strict)
