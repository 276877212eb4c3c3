"""Exact deduplication: one file per distinct content (The Stack was exactly deduplicated before
near-deduplication). The copy kept is the one with the smallest record id, i.e. the first in
input order, so every engine and every rerun keeps the same file.

The digests are computed by the workers (``prepare``) and gathered by tasks over the spill's
parts (each returns its ids and digests as arrays); the driver sorts 24 bytes per file."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from santa.filters.base import CorpusPart, CorpusStep, DecisionTable, Record, corpus_parts, prepared_values


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
        # 24 bytes per file, in flat arrays (Python tuples and a dict cost ~200).
        chunks = list(corpus_parts(records).map_parts(functools.partial(_digests, self)))
        rid = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, dtype=np.int64)
        dig = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros((0, 2), dtype=np.uint64)
        del chunks
        n = len(rid)
        # Sorted by digest, then id: each run of one digest starts with the copy kept.
        order = np.lexsort((rid, dig[:, 1], dig[:, 0]))
        first = np.ones(n, dtype=bool)
        first[1:] = (dig[order[1:], 0] != dig[order[:-1], 0]) | (dig[order[1:], 1] != dig[order[:-1], 1])
        rid = rid[order]
        del order, dig
        kept = rid[np.maximum.accumulate(np.where(first, np.arange(n), 0))]
        drop = ~first
        return DecisionTable.from_columns(
            rid[drop],
            np.ones(int(drop.sum())),
            [f"exact duplicate of id {k}" for k in kept[drop].tolist()],
            duplicate_of=kept[drop],
        )


def _digests(step: ExactDedup, part: CorpusPart) -> tuple[np.ndarray, np.ndarray]:
    """A task over one part: its ids and their digests (n x 2 uint64), computed here for records
    that came without one."""
    prepared = prepared_values(step, part)
    return part.ids(), np.frombuffer(b"".join(prepared), dtype=np.uint64).reshape(-1, 2)
