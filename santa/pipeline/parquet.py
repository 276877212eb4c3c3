"""Writing Parquet files that never look complete before they are: every file is written under a
temporary name and renamed into place."""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _column(values: list[Any], type: pa.DataType | None = None) -> pa.Array:
    try:
        return pa.array(values, type=type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        # Mixed types in one field across records (an int here, a string there): keep every
        # value, as JSON text, rather than fail the shard.
        return pa.array(
            [None if v is None else json.dumps(v, default=str, ensure_ascii=True) for v in values], pa.string()
        )


def rows_table(rows: list[dict[str, Any]], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    """A table with the union of the rows' fields (in order of first appearance); ``types`` fixes
    the type of some columns, so files of one dataset agree on them even when all null."""
    keys: dict[str, None] = {}
    for r in rows:
        for k in r:
            keys.setdefault(k, None)
    types = types or {}
    return pa.table({k: _column([r.get(k) for r in rows], types.get(k)) for k in keys})


def write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        # File contents are (nearly) all distinct: a dictionary for them is built and then
        # abandoned, ~10 % of the writing time.
        pq.write_table(table, tmp, compression="zstd", use_dictionary=[c for c in table.column_names if c != "content"])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_rows(path: Path, rows: list[dict[str, Any]], types: dict[str, pa.DataType] | None = None) -> None:
    write_table(path, rows_table(rows, types))


def json_rows_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """A table of JSON-able rows with a fixed schema, built by Arrow's JSON reader: unlike
    ``pa.array`` on Python objects, which imports pandas (~0.4 s) to ask whether they are pandas
    objects, so that a pipeline's driver can write its own small tables without it."""
    import io

    import pyarrow.json as pj

    if not rows:
        return schema.empty_table()

    def value(v: Any) -> Any:  # JSON has no NaN or infinity
        return None if isinstance(v, float) and not math.isfinite(v) else v

    data = "".join(
        json.dumps({k: value(r.get(k)) for k in schema.names}, ensure_ascii=True) + "\n" for r in rows
    ).encode()
    # One thread: Arrow's thread pool would keep the next run's workers from being forked.
    table = pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(use_threads=False),
        parse_options=pj.ParseOptions(explicit_schema=schema),
    )
    return table.select(schema.names)


def read_dataset(files: Iterable[Path]) -> pa.Table:
    """The Parquet files of one output (data/, rejects/) as one table: each file has the fields its
    source had, so schemas are merged (a field missing or all-null in a file becomes null)."""
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def count_rows(paths: Iterable[Path]) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
