"""santa.data.records: The Stack's record files, their one reader (RecordReader over raw_records),
and the pipeline's inputs reading through it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from santa.data.records import (
    git_blob_sha1,
    parse_json_line,
    raw_records,
    read_records,
    record_files,
    stable_unit,
)
from santa.pipeline.inputs import Unit, iter_unit, resolve_units

# ---------------------------------------------------------------------------------- hashing


def test_git_blob_sha1_matches_git():
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_stable_unit_is_fixed_across_processes():
    # A literal, so a change of hash (or a salted one) shows up here and not as a silently new split.
    assert stable_unit(0, "split", "local/x", "a.py") == pytest.approx(0.08097541347283221)
    assert 0.0 <= stable_unit("anything") < 1.0


# ---------------------------------------------------------------------------------- read_records


RECS = [{"content": "a = 1\n", "lang": "Python"}, {"content": "b = 2\n", "lang": "Python"}]


def write_jsonl(path: Path, lines: list[str], gz: bool = False) -> Path:
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_read_records_formats(tmp_path):
    lines = [json.dumps(r) for r in RECS]
    write_jsonl(tmp_path / "a.jsonl", lines)
    write_jsonl(tmp_path / "b.jsonl.gz", lines, gz=True)
    (tmp_path / "sub").mkdir()
    pq.write_table(pa.Table.from_pylist(RECS), tmp_path / "sub" / "c.parquet")
    (tmp_path / "manifest.json").write_text("{}")  # not a record file: ignored in directories

    assert list(read_records(tmp_path / "a.jsonl")) == RECS
    assert list(read_records(str(tmp_path / "b.jsonl.gz"))) == RECS
    assert list(read_records(tmp_path / "sub" / "c.parquet")) == RECS
    reader = read_records(tmp_path)
    assert [f.name for f in reader.files] == ["a.jsonl", "b.jsonl.gz", "c.parquet"]
    assert list(reader) == RECS * 3 and reader.records == 6
    assert list(read_records(str(tmp_path / "*.jsonl*"))) == RECS * 2
    assert list(read_records([tmp_path / "a.jsonl", tmp_path / "sub"])) == RECS * 2


def test_read_records_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_records(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match=r"\*.parquet"):
        read_records(str(tmp_path / "*.parquet"))
    with pytest.raises(FileNotFoundError, match="no record files"):
        read_records(tmp_path)


def test_malformed_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl.gz", [json.dumps(RECS[0]), "", "{not json", json.dumps(RECS[1])], gz=True)
    with pytest.raises(ValueError, match=r"bad\.jsonl\.gz:3: malformed JSON"):
        list(read_records(path))
    reader = read_records(path, strict=False)
    assert list(reader) == RECS
    assert reader.errors == 1 and "bad.jsonl.gz:3" in reader.error_messages[0]


def test_record_without_content(tmp_path):
    path = write_jsonl(
        tmp_path / "x.jsonl", [json.dumps(RECS[0]), json.dumps({"text": "hi"}), json.dumps({"content": None}), "[1]"]
    )
    with pytest.raises(ValueError, match=r"x\.jsonl:2: record has no 'content'"):
        list(read_records(path))
    reader = read_records(path, strict=False)
    assert list(reader) == [RECS[0]] and reader.errors == 3
    pq.write_table(pa.Table.from_pylist([{"text": "hi"}]), tmp_path / "y.parquet")
    with pytest.raises(ValueError, match="y.parquet: Parquet file has no 'content' column"):
        list(read_records(tmp_path / "y.parquet"))


def test_truncated_gzip_is_reported(tmp_path):
    data = gzip.compress(("".join(json.dumps(r) + "\n" for r in RECS * 200)).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.jsonl\.gz:\d+: unreadable after line \d+"):
        list(read_records(path))
    reader = read_records(path, strict=False)
    list(reader)
    assert reader.errors == 1


# ---------------------------------------------------------------------------------- raw_records


def test_raw_records_gives_jsonl_lines_unparsed_with_their_line_numbers(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl.gz", [json.dumps(RECS[0]), "  ", json.dumps(RECS[1])], gz=True)
    items = list(raw_records(path))
    # Blank lines are skipped but counted: positions are the file's line numbers.
    assert [(pos, where, error) for pos, where, _, error in items] == [(1, f"{path}:1", None), (3, f"{path}:3", None)]
    assert all(isinstance(raw, bytes) for _, _, raw, _ in items)
    assert [parse_json_line(raw)[0] for _, _, raw, _ in items if isinstance(raw, bytes)] == RECS


def test_raw_records_gives_parquet_rows_as_dicts(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(RECS), path)
    assert list(raw_records(path)) == [(1, f"{path}: row 1", RECS[0], None), (2, f"{path}: row 2", RECS[1], None)]
    pq.write_table(pa.Table.from_pylist([{"text": "hi"}]), tmp_path / "y.parquet")
    assert list(raw_records(tmp_path / "y.parquet", require="content")) == [
        (0, str(tmp_path / "y.parquet"), None, "Parquet file has no 'content' column (columns: ['text'])")
    ]


@pytest.mark.parametrize(
    "line, error",
    [
        (b'{"content": "x"}', None),
        (b'{"content": "broken', "malformed JSON line (Unterminated string"),
        (b'{"content": "\xff"}', "invalid UTF-8 (invalid start byte at byte 13)"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"null", "expected a JSON object, got NoneType"),
    ],
)
def test_parse_json_line(line, error):
    rec, got = parse_json_line(line)
    if error is None:
        assert got is None and rec == {"content": "x"}
    else:
        assert rec is None and got is not None and got.startswith(error)


def test_a_damaged_parquet_file_is_one_error(tmp_path):
    path = tmp_path / "cut.parquet"
    pq.write_table(pa.Table.from_pylist(RECS * 100), path)
    path.write_bytes(path.read_bytes()[:-20])  # the footer is gone: nothing of it can be read
    [(pos, where, raw, error)] = list(raw_records(path))
    assert (pos, where, raw) == (1, f"{path}: row 1", None)
    assert error is not None and error.startswith("unreadable Parquet after row 0 (")
    with pytest.raises(ValueError, match=r"cut\.parquet: row 1: unreadable Parquet after row 0"):
        list(read_records(path))
    reader = read_records(path, strict=False)
    assert list(reader) == [] and reader.errors == 1


def test_the_pipeline_reads_records_as_the_reader_does(tmp_path):
    """The pipeline's items of a record file are raw_records' (ids = unit << 32 | line or row),
    and the errors its workers report for them are the reader's, word for word."""
    (tmp_path / "in").mkdir()
    bad = write_jsonl(
        tmp_path / "in" / "bad.jsonl",
        [json.dumps(RECS[0]), "", "{not json", "[1]", json.dumps(RECS[1])],
    )
    pq.write_table(pa.Table.from_pylist(RECS), tmp_path / "in" / "p.parquet")
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in RECS * 300).encode())
    (tmp_path / "in" / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])

    units = resolve_units(tmp_path / "in")
    assert [Path(u.path) for u in units] == record_files(tmp_path / "in")
    assert [u.kind for u in units] == ["records"] * 3
    records, errors = [], []
    for unit in units:
        for rid, where, raw, error in iter_unit(unit):
            assert rid >> 32 == unit.index
            if isinstance(raw, bytes):  # what a worker does with a JSONL line
                raw, error = parse_json_line(raw)
            if error is None:
                records.append(raw)
            else:
                errors.append(f"{where}: {error}")
    reader = read_records(tmp_path / "in", strict=False)
    assert records == list(reader)
    assert errors == reader.error_messages and len(errors) == 3
    assert [rid & 0xFFFFFFFF for rid, *_ in iter_unit(Unit(0, str(bad), "records"))] == [1, 3, 4, 5]
