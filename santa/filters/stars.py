"""The "stars" data variant: keep files whose repository has at least N GitHub stars.

The paper says >= 5; BigCode's code used > 5 (``op: ">"`` reproduces it). A record without a star
count stops the step with an error instead of being kept or dropped silently: a source without
stars metadata (local source trees, the demo corpus) would otherwise lose or keep everything. In
The Stack a null ``max_stars_count`` means "no stars", which ``missing: zero`` reads as 0.

``missing: pseudo`` is for corpora without any stars metadata (the embedded demo): each file gets a
deterministic pseudo count from a hash of its repository and path, heavy-tailed and calibrated so
that a fraction ``pseudo_below`` of files falls under the threshold (0.6: the paper's ~60 %
removed). It exercises the step at the paper's removal rate; what it keeps is a random subset of
files, so it says nothing about whether starred code is better code.
"""

from __future__ import annotations

import hashlib
import math
import operator
from typing import Any

from santa.errors import SantaError
from santa.filters.base import Decision, Record, RecordStep

_OPS = {">=": operator.ge, ">": operator.gt}
_MISSING = ("error", "zero", "keep", "drop", "pseudo")


class StarsMetadataError(SantaError, ValueError):
    """A record without a star count reached the stars step while ``missing=error``."""


class Stars(RecordStep):
    stat_label = "stars"

    def __init__(self, min_stars: int = 5, op: str = ">=", missing: str = "error", pseudo_below: float = 0.6) -> None:
        if op not in _OPS:
            raise SantaError(f"stars: op must be one of {sorted(_OPS)}, got {op!r} (pipeline.params.stars.op)")
        if missing not in _MISSING:
            raise SantaError(
                f"stars: missing must be one of {list(_MISSING)}, got {missing!r} (pipeline.params.stars.missing)"
            )
        if not 0.0 < float(pseudo_below) < 1.0:
            raise SantaError(
                f"stars: pseudo_below must be in (0, 1), got {pseudo_below} (pipeline.params.stars.pseudo_below)"
            )
        self.min_stars, self.op, self.missing = int(min_stars), op, missing
        self.pseudo_below = float(pseudo_below)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"min_stars": self.min_stars, "op": self.op, "missing": self.missing}
        if self.missing == "pseudo":
            out["pseudo_below"] = self.pseudo_below
        return out

    def pseudo_stars(self, repo: str, path: str) -> int:
        """floor((1-u)^-k) - 1 for u uniform from a hash: P(stars < t) = 1 - (t+1)^(-1/k), with k
        chosen so that this is ``pseudo_below`` at the step's threshold t."""
        t = self.min_stars + (1 if self.op == ">" else 0)
        k = math.log(t + 1) / -math.log(1.0 - self.pseudo_below)
        digest = hashlib.blake2b(f"{repo}\0{path}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2.0**64
        return int(math.floor((1.0 - u) ** -k)) - 1

    def process(self, batch: list[Record]) -> list[Decision]:
        compare = _OPS[self.op]
        out = []
        for rec in batch:
            stars = rec.get("stars")
            if stars is None:
                if self.missing == "error":
                    raise StarsMetadataError(
                        f"stars: record {rec.get('repo') or '?'}/{rec.get('path') or '?'} (id {rec.get('id')}) has no "
                        "star count (max_stars_count is absent or null), so this source has no stars metadata to "
                        "filter on. Drop `stars` from pipeline.steps, or, if a null count means 'no stars' as in "
                        "The Stack, set pipeline.params.stars.missing=zero (or keep/drop)."
                    )
                if self.missing == "keep":
                    out.append(Decision(True, None, details={"note": "no star count: kept (missing=keep)"}))
                    continue
                if self.missing == "drop":
                    out.append(Decision(False, None, "no star count (missing=drop)"))
                    continue
                stars = (
                    self.pseudo_stars(rec.get("repo") or "", rec.get("path") or "") if self.missing == "pseudo" else 0
                )
            stars = int(stars)
            if compare(stars, self.min_stars):
                out.append(Decision(True, float(stars)))
            else:
                out.append(Decision(False, float(stars), f"{stars} stars, need {self.op} {self.min_stars}"))
        return out
