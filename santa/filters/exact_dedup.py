"""Exact deduplication: one file per distinct content (The Stack was exactly deduplicated before
near-deduplication). The copy kept is the one with the smallest record id, i.e. the first in
input order, so every engine and every rerun keeps the same file."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable
from typing import Any

import numpy as np

from santa.filters.base import CorpusStep, DecisionTable, Record


class ExactDedup(CorpusStep):
    # The digests are prepared in the workers: the corpus-wide part reads only them.
    reads_content = False

    def params(self) -> dict[str, Any]:
        return {"hash": "blake2b-128"}

    def prepare(self, batch: list[Record]) -> list[Any]:
        return [
            hashlib.blake2b(rec["content"].encode("utf-8", "surrogatepass"), digest_size=16).digest() for rec in batch
        ]

    def process_corpus(self, records: Iterable[Record]) -> DecisionTable:
        # 24 bytes per file, in two flat buffers (Python tuples and a dict cost ~200).
        ids = array("q")
        digests = bytearray()
        for rec in records:
            ids.append(int(rec["id"]))
            digests += rec.get("_prepared") or self.prepare([rec])[0]
        n = len(ids)
        rid = np.frombuffer(ids, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
        dig = np.frombuffer(digests, dtype=np.uint64).reshape(n, 2)
        # Sorted by digest, then id: each run of one digest starts with the copy kept.
        order = np.lexsort((rid, dig[:, 1], dig[:, 0]))
        first = np.ones(n, dtype=bool)
        first[1:] = (dig[order[1:], 0] != dig[order[:-1], 0]) | (dig[order[1:], 1] != dig[order[:-1], 1])
        rid = rid[order]
        del order, dig, digests
        kept = rid[np.maximum.accumulate(np.where(first, np.arange(n), 0))]
        drop = ~first
        return DecisionTable.from_columns(
            rid[drop],
            np.ones(int(drop.sum())),
            [f"exact duplicate of id {k}" for k in kept[drop].tolist()],
            duplicate_of=kept[drop],
        )
