"""Exact deduplication: one file per distinct content (The Stack was exactly deduplicated before
near-deduplication). The copy kept is the one with the smallest record id, i.e. the first in
input order, so every engine and every rerun keeps the same file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from santa.filters.base import CorpusStep, Decision, Record


class ExactDedup(CorpusStep):
    def params(self) -> dict[str, Any]:
        return {"hash": "blake2b-128"}

    def prepare(self, batch: list[Record]) -> list[Any]:
        return [hashlib.blake2b(rec["content"].encode("utf-8", "surrogatepass"), digest_size=16).digest() for rec in batch]

    def process_corpus(self, records: Iterable[Record]) -> dict[int, Decision]:
        # Smallest id first, whatever order the records arrive in.
        seen = sorted((int(rec["id"]), rec.get("_prepared") or self.prepare([rec])[0]) for rec in records)
        first: dict[bytes, int] = {}
        dropped: dict[int, Decision] = {}
        for rid, digest in seen:
            kept = first.setdefault(digest, rid)
            if kept != rid:
                dropped[rid] = Decision(False, 1.0, f"exact duplicate of id {kept}", details={"duplicate_of": kept})
        return dropped
