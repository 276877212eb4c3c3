"""Read a W&B run file (`run-<id>.wandb`) without a server: offline runs keep everything there as
protobuf records framed like a LevelDB log (32 KiB blocks, 7-byte record headers). W&B's own
Python reader went away with its Go core, and `wandb sync` needs an account; santa's tests read
offline runs with this (test-only: it lives beside them, not in the package)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_MAGIC = b":W&B"
_FILE_HEADER = 7  # magic, 0xBEE1, version
_RECORD_HEADER = 7  # crc32, length, type
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def run_files(root: str | Path) -> list[Path]:
    """Every run file under ``root`` (a run dir, a wandb/ dir, or a whole output tree)."""
    root = Path(root)
    return [root] if root.is_file() else sorted(root.rglob("run-*.wandb"))


def iter_payloads(path: str | Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    if data[:4] != _MAGIC:
        raise ValueError(f"{path} is not a W&B run file (no {_MAGIC!r} header)")
    pos, pending = _FILE_HEADER, b""
    while pos + _RECORD_HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _RECORD_HEADER:  # a block's tail too short for a header is zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _RECORD_HEADER])
        chunk = data[pos + _RECORD_HEADER : pos + _RECORD_HEADER + length]
        pos += _RECORD_HEADER + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""
        elif kind == 0 and length == 0:
            pos += _BLOCK - pos % _BLOCK if pos % _BLOCK else 0
        else:
            raise ValueError(f"{path}: unknown record type {kind} at byte {pos}")


def read_run(path: str | Path) -> dict[str, Any]:
    """``{"id", "name", "group", "job_type", "config", "history": [row, ...], "summary", "finished"}`` of one run
    file; ``finished`` is whether W&B wrote the run's exit record (the file is complete)."""
    from wandb.proto import wandb_internal_pb2

    out: dict[str, Any] = {
        "id": None,
        "name": None,
        "group": None,
        "job_type": None,
        "config": {},
        "history": [],
        "summary": {},
        "finished": False,
    }
    for payload in iter_payloads(path):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["id"], out["group"] = rec.run.run_id, rec.run.run_group or None
            out["name"], out["job_type"] = rec.run.display_name or None, rec.run.job_type or None
            for item in rec.run.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "exit":
            out["finished"] = True
        elif kind == "summary":
            for item in rec.summary.update:
                out["summary"][_key(item)] = json.loads(item.value_json)
    return out


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)
