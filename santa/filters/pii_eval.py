"""``santa pii-eval``: score PII detection against an annotated JSONL file.

Input, one object per line::

    {"text": "...", "spans": [{"start": 10, "end": 27, "type": "email"}, ...]}

types ``email``, ``ip``, ``key``; character offsets into ``text``, end exclusive. Annotate what
the pii step should redact: an address it must leave alone by design (private, a DNS resolver, a
CIDR range) is not a span.

Scoring follows the paper: a detection is a true positive when its overlap with a reference span
of the same type covers more than 80 % of both spans. Unlike BigCode's script, matching is one to
one (a reference is claimed by at most one detection), so a key found twice over the same span
counts once as TP and once as FP instead of twice as TP.

The annotated set santa ships (``santa/filters/data/pii_eval.jsonl``, scored when FILE is
omitted) is compiled from ``pii_eval_source.txt`` beside it with :func:`compile_markup`.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from santa.errors import SantaError
from santa.filters.pii import PII_TYPES, RULES, detect_pii

__all__ = [
    "OVERLAP",
    "EvalError",
    "Example",
    "TypeScore",
    "add_arguments",
    "compile_markup",
    "default_eval_file",
    "load_examples",
    "match_spans",
    "run",
    "score_examples",
]

# A detection and a reference match when the overlap is > 80 % of each (the paper's rule).
OVERLAP = 0.8
Span = tuple[int, int]


class EvalError(SantaError, ValueError):
    """An annotated file that cannot be scored; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    text: str
    # (start, end, type)
    spans: tuple[tuple[int, int, str], ...]


@dataclass
class TypeScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        """None when nothing was predicted but something was annotated: undefined, not 0."""
        return _ratio(self.tp, self.tp + self.fp, self.fn)

    @property
    def recall(self) -> float | None:
        """None when something was predicted but nothing was annotated."""
        return _ratio(self.tp, self.tp + self.fn, self.fp)

    @property
    def f1(self) -> float:
        p, r = self.precision or 0.0, self.recall or 0.0
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "precision": None if self.precision is None else round(self.precision, 4),
            "recall": None if self.recall is None else round(self.recall, 4),
            "f1": round(self.f1, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def _ratio(num: int, den: int, other_errors: int) -> float | None:
    # Nothing annotated and nothing found is perfect; otherwise an empty denominator leaves the
    # ratio undefined (BigCode's script wrote 0 there, which reads as "all wrong").
    if den:
        return num / den
    return 1.0 if other_errors == 0 else None


def _cell(value: float | None, why: str) -> str:
    return f"undefined ({why})" if value is None else f"{value:.3f}"


def default_eval_file() -> Path:
    """The annotated set santa ships."""
    return Path(str(resources.files("santa.filters") / "data" / "pii_eval.jsonl"))


# ----------------------------------------------------------------------------------------------
# Reading


def load_examples(path: str | Path) -> list[Example]:
    """Parse and validate an annotated JSONL file (blank lines are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f'{path}: no such file (an annotated JSONL file: one {{"text", "spans"}} object per line)')
    examples: list[Example] = []
    with open(path, encoding="utf-8", errors="strict") as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    examples.append(_parse(line, f"{path}:{lineno}"))
        except UnicodeDecodeError as exc:
            raise EvalError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    return examples


def _parse(line: str, where: str) -> Example:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise EvalError(f'{where}: expected a JSON object with "text" and "spans", got {type(obj).__name__}')
    text, spans = obj.get("text"), obj.get("spans")
    if not isinstance(text, str):
        raise EvalError(f'{where}: "text" must be a string')
    if not isinstance(spans, list):
        raise EvalError(f'{where}: "spans" must be a list of {{"start", "end", "type"}} objects')
    out: list[tuple[int, int, str]] = []
    for k, span in enumerate(spans):
        if not isinstance(span, dict):
            raise EvalError(f"{where}: spans[{k}] must be an object")
        start, end, kind = span.get("start"), span.get("end"), span.get("type")
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or isinstance(end, bool):
            raise EvalError(f'{where}: spans[{k}] needs integer "start" and "end"')
        if not 0 <= start < end <= len(text):
            raise EvalError(
                f"{where}: spans[{k}] = [{start}, {end}) is not a non-empty range inside the text (length {len(text)})"
            )
        if kind not in PII_TYPES:
            raise EvalError(f"{where}: spans[{k}] has type {kind!r}; valid types: {', '.join(PII_TYPES)}")
        out.append((start, end, kind))
    return Example(text, tuple(sorted(out)))


_MARK = re.compile(r"⟦(\w+)\|(.*?)⟧", re.DOTALL)


def compile_markup(source: str) -> list[Example]:
    """Examples from santa's markup: records start with a line ``=== <id> <note>``; inside a
    record, ``⟦type|value⟧`` annotates ``value``. Lines before the first record are comments."""
    examples: list[Example] = []
    for chunk in re.split(r"^=== .*\n", source, flags=re.MULTILINE)[1:]:
        parts: list[str] = []
        spans: list[tuple[int, int, str]] = []
        pos = length = 0
        for m in _MARK.finditer(chunk):
            parts.append(chunk[pos : m.start()])
            length += m.start() - pos
            kind, value = m.group(1), m.group(2)
            if kind not in PII_TYPES:
                raise EvalError(f"markup: unknown type {kind!r} in ⟦{kind}|...⟧")
            spans.append((length, length + len(value), kind))
            parts.append(value)
            length += len(value)
            pos = m.end()
        parts.append(chunk[pos:])
        examples.append(Example("".join(parts), tuple(spans)))
    return examples


# ----------------------------------------------------------------------------------------------
# Scoring


def _overlaps(a: Span, b: Span, threshold: float = OVERLAP) -> bool:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    return inter > 0 and inter / (a[1] - a[0]) > threshold and inter / (b[1] - b[0]) > threshold


def match_spans(references: Sequence[Span], predictions: Sequence[Span]) -> TypeScore:
    """One-to-one matching, predictions in order of start, each taking the first free reference
    it overlaps by the paper's rule."""
    score = TypeScore()
    free = sorted(references)
    for pred in sorted(predictions):
        hit = next((ref for ref in free if _overlaps(pred, ref)), None)
        if hit is None:
            score.fp += 1
        else:
            free.remove(hit)
            score.tp += 1
    score.fn = len(free)
    return score


def score_examples(
    examples: Iterable[Example], *, rules: str = "santa", types: Sequence[str] = PII_TYPES
) -> dict[str, TypeScore]:
    """Per-type scores of ``detect_pii`` over ``examples``."""
    totals = {t: TypeScore() for t in types}
    for ex in examples:
        found = detect_pii(ex.text, types=types, rules=rules)
        for t in types:
            s = match_spans(
                [(a, b) for a, b, k in ex.spans if k == t],
                [(d.start, d.end) for d in found if d.type == t],
            )
            totals[t].tp += s.tp
            totals[t].fp += s.fp
            totals[t].fn += s.fn
    return totals


# ----------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Score PII detection (santa.filters.pii) against an annotated JSONL file."
    if not parser.add_help:
        # santa's CLI builds the chosen subcommand's parser without -h and leaves it to us.
        parser.add_argument("-h", "--help", action="help", help="show this help message and exit")
    parser.add_argument(
        "file",
        nargs="?",
        default=None,
        help='annotated JSONL ({"text", "spans": [{"start", "end", "type"}]} per line); default: the set santa ships',
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--rules", choices=RULES, default="santa", help="detection rules to score (default: santa)")
    parser.add_argument(
        "--types", nargs="+", choices=PII_TYPES, default=list(PII_TYPES), metavar="TYPE", help="types to score"
    )


def run(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else default_eval_file()
    examples = load_examples(path)
    scores = score_examples(examples, rules=args.rules, types=args.types)
    if args.json:
        print(json.dumps({t: s.as_dict() for t, s in scores.items()}))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"PII detection on {path.name} ({len(examples)} examples, rules={args.rules})")
    for col in ("type", "precision", "recall", "F1", "TP", "FP", "FN"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for t, s in scores.items():
        table.add_row(
            t,
            _cell(s.precision, "nothing predicted"),
            _cell(s.recall, "nothing annotated"),
            f"{s.f1:.3f}",
            str(s.tp),
            str(s.fp),
            str(s.fn),
        )
    Console().print(table)
    return 0
