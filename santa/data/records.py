"""The Stack-style record files: what a record is (its fields, its language, its id) and the one
reader of JSONL(.gz) and Parquet record files that the corpus stage, the pipeline's inputs and the
tests use. The demo corpus builder (:mod:`santa.data.corpus`) writes such files."""

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
    "LANGUAGES",
    "CorpusError",
    "RecordReader",
    "git_blob_sha1",
    "json_lines",
    "read_records",
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
_RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".parquet")


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


def _is_record_file(path: Path) -> bool:
    return path.name.endswith(_RECORD_SUFFIXES)


def _resolve(source: str | Path) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_record_file(p))
        if not files:
            raise FileNotFoundError(f"no record files ({', '.join(_RECORD_SUFFIXES)}) under directory {path}")
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


def json_lines(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed value or None, error or None) for each non-blank line of a JSONL or
    JSONL.gz file. A line that is not JSON or not UTF-8 gives its error and the reading goes on;
    a truncated or corrupt gzip ends the file with one error on the line after the last one read
    (what came before is fine, the rest is lost)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    lineno = 0
    try:
        with opener(path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line), None
                except UnicodeDecodeError as exc:
                    yield lineno, None, f"invalid UTF-8 ({exc.reason} at byte {exc.start})"
                except ValueError as exc:
                    yield lineno, None, f"malformed JSON line ({exc})"
    except (OSError, EOFError, zlib.error) as exc:
        yield lineno + 1, None, f"unreadable after line {lineno} ({exc}); the rest of the file is lost"


class RecordReader:
    """Iterator over the records of JSONL(.gz) and Parquet files, in file order.

    ``strict=True`` raises on the first bad line (naming file and line); ``strict=False`` skips
    it and counts it in ``errors``, keeping the first messages in ``error_messages``.
    """

    def __init__(self, source: str | Path | Iterable[str | Path], *, strict: bool = True):
        sources = [source] if isinstance(source, (str, Path)) else list(source)
        self.files: list[Path] = [f for s in sources for f in _resolve(s)]
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

    def _check(self, rec: Any, where: str) -> bool:
        if not isinstance(rec, dict):
            self._fail(f"{where}: expected a JSON object, got {type(rec).__name__}")
            return False
        if "content" not in rec:
            self._fail(f"{where}: record has no 'content' field (fields: {sorted(rec)[:10]})")
            return False
        if not isinstance(rec["content"], str):
            self._fail(f"{where}: 'content' is {type(rec['content']).__name__}, not a string")
            return False
        return True

    def _generate(self) -> Iterator[dict[str, Any]]:
        for path in self.files:
            if path.name.endswith(".parquet"):
                yield from self._parquet(path)
            else:
                yield from self._jsonl(path)

    def _jsonl(self, path: Path) -> Iterator[dict[str, Any]]:
        for lineno, rec, error in json_lines(path):
            if error is not None:
                self._fail(f"{path}:{lineno}: {error}")
            elif self._check(rec, f"{path}:{lineno}"):
                self.records += 1
                yield rec

    def _parquet(self, path: Path) -> Iterator[dict[str, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        row = 0
        try:
            pf = pq.ParquetFile(path)
            if "content" not in pf.schema_arrow.names:
                self._fail(f"{path}: Parquet file has no 'content' column (columns: {pf.schema_arrow.names[:10]})")
                return
            for batch in pf.iter_batches(batch_size=1024):
                for rec in batch.to_pylist():
                    row += 1
                    if self._check(rec, f"{path}: row {row}"):
                        self.records += 1
                        yield rec
        except (pa.ArrowException, OSError) as exc:
            self._fail(f"{path}: unreadable Parquet after row {row}: {exc}")


def read_records(source: str | Path | Iterable[str | Path], *, strict: bool = True) -> RecordReader:
    """Records from a JSONL, JSONL.gz or Parquet file, a directory (all such files under it,
    sorted), a glob pattern, or a list of any of these. Missing paths raise FileNotFoundError at
    once; see :class:`RecordReader` for bad lines."""
    return RecordReader(source, strict=strict)


# --------------------------------------------------------------------------------------------
# Summary
