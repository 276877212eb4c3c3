"""The "fertility" data variant: drop files that the project's tokenizer compresses badly, i.e.
with fewer characters per token than a per-language threshold (Python 2.5, Java 2.9,
JavaScript 2.6). Such files are mostly data, encoded blobs or non-English text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from santa.errors import SantaError
from santa.filters.base import Decision, Record, RecordStep, StepContext

PAPER_THRESHOLDS = {"Python": 2.5, "Java": 2.9, "JavaScript": 2.6}


class Fertility(RecordStep):
    stat_label = "characters / token"

    def __init__(self, thresholds: Mapping[str, float] | None = None, default: float | None = None) -> None:
        self.thresholds = {
            str(k): float(v) for k, v in (thresholds if thresholds is not None else PAPER_THRESHOLDS).items()
        }
        # Threshold for languages not listed; None keeps them unmeasured.
        self.default = None if default is None else float(default)
        self._backend: Any = None

    def params(self) -> dict[str, Any]:
        return {"thresholds": dict(sorted(self.thresholds.items())), "default": self.default}

    def setup(self, context: StepContext) -> None:
        if context.tokenizer is None:
            raise SantaError(
                "fertility needs the project's tokenizer to count tokens, and this run has none: "
                "pass tokenizer=<tokenizer dir or tokenizer.json> to `santa prepare` (train.py supplies one)"
            )
        from santa.data.tokenizer import rust_tokenizer

        tokenizer = context.tokenizer()
        try:
            self._backend = rust_tokenizer(tokenizer)
        except TypeError:
            raise SantaError(
                f"fertility: the tokenizer ({type(tokenizer).__name__}) is not a fast (Rust) tokenizer"
            ) from None

    def process(self, batch: list[Record]) -> list[Decision]:
        if self._backend is None:
            raise RuntimeError("Fertility.process called before setup()")
        todo = [i for i, rec in enumerate(batch) if self._threshold(rec) is not None and rec["content"]]
        encodings = self._backend.encode_batch([batch[i]["content"] for i in todo], add_special_tokens=False)
        n_tokens = dict(zip(todo, (len(e.ids) for e in encodings)))
        out = []
        for i, rec in enumerate(batch):
            limit = self._threshold(rec)
            if limit is None:
                out.append(Decision(True, None, details={"note": f"no fertility threshold for {rec.get('lang')}"}))
                continue
            if i not in n_tokens:  # empty content: no characters, no tokens
                out.append(Decision(False, 0.0, f"empty file, chars/token 0 < {limit:g}"))
                continue
            fertility = len(rec["content"]) / max(n_tokens[i], 1)
            stat = round(fertility, 4)
            if fertility < limit:
                out.append(Decision(False, stat, f"chars/token {fertility:.3f} < {limit:g}"))
            else:
                out.append(Decision(True, stat))
        return out

    def _threshold(self, rec: Record) -> float | None:
        return self.thresholds.get(rec.get("lang") or "", self.default)
