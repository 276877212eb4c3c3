"""The evaluation's resumable caches (``generations.jsonl``, ``executions.jsonl``): one JSON object
per line, each with a ``key``; a run appends as it goes, and a rerun reads back what is there.

A kill mid-write leaves a torn last line: reading skips it (that unit is done again), and
appending starts on a fresh line so that the next record is not glued to it and lost with it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any


def read(path: Path) -> dict[str, dict[str, Any]]:
    """Every whole record of ``path`` by its key (a later record of a key wins); {} if no file."""
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
                out[rec["key"]] = rec
            except (ValueError, KeyError, TypeError):
                continue  # a torn line
    return out


def open_for_append(path: Path) -> IO[str]:
    """``path`` opened to append records, on a fresh line after a torn one; its folder made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = False
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as end:
            end.seek(-1, os.SEEK_END)
            torn = end.read(1) != b"\n"
    fh = open(path, "a", encoding="utf-8")
    if torn:
        fh.write("\n")
    return fh
