"""The Stack's basic quality filter, applied to SantaCoder's base corpus: drop files with a line
longer than 1,000 characters, a mean line length above 100, or less than 25 % alphanumeric
characters (generated code, minified bundles, data blobs)."""

from __future__ import annotations

import re
from typing import Any

from santa.errors import SantaError
from santa.filters.base import Decision, Record, RecordStep

_NON_ASCII_RUNS = re.compile(r"[^\x00-\x7f]+")


def line_stats(content: str) -> tuple[int, float]:
    """(longest line, mean line length) in characters, over ``str.splitlines()`` lines."""
    lines = content.splitlines()
    if not lines:
        return 0, 0.0
    lengths = list(map(len, lines))
    return max(lengths), sum(lengths) / len(lengths)


_ASCII_ALNUM = bytes(c for c in range(128) if chr(c).isalnum())


def alnum_fraction(content: str) -> float:
    """Fraction of characters for which ``str.isalnum()`` holds."""
    if not content:
        return 0.0
    # The ASCII characters (all of most code): delete the alphanumeric bytes in one C call; the
    # few others one by one.
    data = content.encode("ascii", "ignore")
    count = len(data) - len(data.translate(None, _ASCII_ALNUM))
    if len(data) < len(content):
        count += sum(ch.isalnum() for run in _NON_ASCII_RUNS.findall(content) for ch in run)
    return count / len(content)


class BasicQuality(RecordStep):
    stat_label = "alphanumeric fraction (rejects: the failing statistic)"

    def __init__(
        self, max_line_length: int = 1000, max_mean_line_length: float = 100, min_alnum_fraction: float = 0.25
    ) -> None:
        if max_line_length < 1 or max_mean_line_length <= 0 or not 0 <= min_alnum_fraction <= 1:
            raise SantaError(
                f"basic: need max_line_length >= 1, max_mean_line_length > 0 and 0 <= min_alnum_fraction <= 1; "
                f"got {max_line_length}, {max_mean_line_length}, {min_alnum_fraction} (pipeline.params.basic)"
            )
        self.max_line_length = int(max_line_length)
        self.max_mean_line_length = float(max_mean_line_length)
        self.min_alnum_fraction = float(min_alnum_fraction)

    def params(self) -> dict[str, Any]:
        return {
            "max_line_length": self.max_line_length,
            "max_mean_line_length": self.max_mean_line_length,
            "min_alnum_fraction": self.min_alnum_fraction,
        }

    def decide(self, content: str) -> Decision:
        longest, mean = line_stats(content)
        if longest > self.max_line_length:
            return Decision(False, float(longest), f"max line length {longest} > {self.max_line_length}")
        if mean > self.max_mean_line_length:
            return Decision(False, round(mean, 3), f"mean line length {mean:.1f} > {self.max_mean_line_length:g}")
        alnum = alnum_fraction(content)
        if alnum < self.min_alnum_fraction:
            return Decision(False, round(alnum, 4), f"alphanumeric fraction {alnum:.3f} < {self.min_alnum_fraction:g}")
        return Decision(True, round(alnum, 4))

    def process(self, batch: list[Record]) -> list[Decision]:
        return [self.decide(rec["content"]) for rec in batch]
