"""The "stars" data variant: keep files whose repository has at least N GitHub stars.

The paper says >= 5; BigCode's code used > 5 (``op: ">"`` reproduces it). A record without a star
count stops the step with an error instead of being kept or dropped silently: a source without
stars metadata (local source trees, the demo corpus) would otherwise lose or keep everything. In
The Stack a null ``max_stars_count`` means "no stars", which ``missing: zero`` reads as 0.
"""

from __future__ import annotations

import operator
from typing import Any

from santa.errors import SantaError
from santa.filters.base import Decision, Record, RecordStep

_OPS = {">=": operator.ge, ">": operator.gt}
_MISSING = ("error", "zero", "keep", "drop")


class StarsMetadataError(SantaError, ValueError):
    """A record without a star count reached the stars step while ``missing=error``."""


class Stars(RecordStep):
    def __init__(self, min_stars: int = 5, op: str = ">=", missing: str = "error") -> None:
        if op not in _OPS:
            raise SantaError(f"stars: op must be one of {sorted(_OPS)}, got {op!r} (pipeline.params.stars.op)")
        if missing not in _MISSING:
            raise SantaError(f"stars: missing must be one of {list(_MISSING)}, got {missing!r} (pipeline.params.stars.missing)")
        self.min_stars, self.op, self.missing = int(min_stars), op, missing

    def params(self) -> dict[str, Any]:
        return {"min_stars": self.min_stars, "op": self.op, "missing": self.missing}

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
                stars = 0
            stars = int(stars)
            if compare(stars, self.min_stars):
                out.append(Decision(True, float(stars)))
            else:
                out.append(Decision(False, float(stars), f"{stars} stars, need {self.op} {self.min_stars}"))
        return out
