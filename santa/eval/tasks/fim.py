"""Fill-in-the-middle benchmarks: SantaCoder's single-line infilling (exact match) built from
MultiPL-E's fim-humaneval files, and HumanEval single-line infilling (scored by execution)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from santa.eval.tasks.base import Benchmark, BenchmarkDataError, ExactMatchBenchmark, Problem

FIM_DIR = "multipl-e_9b61dc6"
INFILL_FILE = "human-eval-infilling_88062ff/data/HumanEval-SingleLineInfilling.jsonl.gz"
_COMMENT = {"py": "#", "js": "//", "java": "//"}
_PAPER_SOURCE = "SantaCoder 1.1B, arXiv 2301.03988 (single-line FIM; InCoder-6.7B: py 0.31, js 0.51, java 0.49)"


def read_fim_humaneval(data_dir: Path, language: str) -> list[dict[str, Any]]:
    """The rows of ``fim-humaneval-<language>.json``: ``language, prompt, body`` (list of lines)."""
    path = data_dir / FIM_DIR / "prompts" / f"fim-humaneval-{language}.json"
    if not path.is_file():
        raise BenchmarkDataError(f"fim_{language}: {path} not found (data_dir={data_dir})")
    return json.loads(path.read_text(encoding="utf-8"))


def single_line_tasks(prompt: str, body: list[str], language: str) -> list[tuple[int, str, str, str]]:
    """SantaCoder's single-line infilling tasks of one solution, as the data README defines them:
    comment lines dropped, then for every remaining non-blank line i ->
    ``(i, prefix = prompt + "\\n".join(lines[:i]), suffix = "\\n".join(lines[i+1:]), answer = lines[i])``.

    The prefix does not end with the newline before line i, nor does the suffix start with the
    one after it; exact match compares after ``strip()``, so a model that writes them is not
    penalised.
    """
    marker = _COMMENT[language]
    lines = [line for line in body if not line.lstrip().startswith(marker)]
    return [
        (i, prompt + "\n".join(lines[:i]), "\n".join(lines[i + 1 :]), line)
        for i, line in enumerate(lines)
        if line.strip()
    ]


class SantaCoderFim(ExactMatchBenchmark):
    """Single-line FIM exact match on one language (1043 py + 1969 js + 1780 java tasks)."""

    default_generation = "fim"
    paper_source = _PAPER_SOURCE

    def problems(self) -> list[Problem]:
        out = []
        for j, row in enumerate(read_fim_humaneval(self.data_dir, self.language)):
            for i, prefix, suffix, answer in single_line_tasks(row["prompt"], row["body"], self.language):
                out.append(
                    Problem(
                        task_id=f"fim-humaneval-{self.language}/{j}/L{i}",
                        language=self.language,
                        prompt=prefix,
                        suffix=suffix,
                        answer=answer,
                        meta={"solution": j, "line": i},
                    )
                )
        return out

    def dataset(self) -> dict[str, Any]:
        path = self._file(f"{FIM_DIR}/prompts/fim-humaneval-{self.language}.json")
        return {"name": "MultiPL-E fim-humaneval", "version": "9b61dc6", "files": self._files_info(path)}

    def contamination(self) -> Iterator[tuple[str, str]]:
        # HumanEval's solutions (in MultiPL-E's translations) with one line taken out: the
        # strings of humaneval_py and multiple_humaneval_* already keep them out of training data.
        return iter(())


class FimPy(SantaCoderFim):
    name, language = "fim_py", "py"
    paper = {"exact_match": 0.44}


class FimJs(SantaCoderFim):
    name, language = "fim_js", "js"
    paper = {"exact_match": 0.60}


class FimJava(SantaCoderFim):
    name, language = "fim_java", "java"
    paper = {"exact_match": 0.62}


def reference_solutions(data_dir: Path, language: str) -> dict[str, str]:
    """fim-humaneval's working solutions as completions, keyed by the prompt they continue:
    ``"\\n".join(body)``. They run on past the function, so a harness must cut them at the
    problem's stop sequences, as it cuts a model's completion."""
    return {row["prompt"]: "\n".join(row["body"]) for row in read_fim_humaneval(data_dir, language)}


class HumanEvalInfillPy(Benchmark):
    """HumanEval single-line infilling (Bavarian et al. / Fried et al.), 1033 tasks; the program
    is human-eval-infilling's ``prompt + completion + suffix + "\\n" + test + "\\n" + check(...)``."""

    name = "humaneval_infill_py"
    language = "py"
    scoring = "execution"
    default_generation = "fim"

    def problems(self) -> list[Problem]:
        path = self._file(INFILL_FILE)
        out = []
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                out.append(
                    Problem(
                        task_id=row["task_id"],
                        language="py",
                        prompt=row["prompt"],
                        suffix=row["suffix"],
                        tests=row["test"] + "\n" + f"check({row['entry_point']})",
                        answer=row["canonical_solution"],
                        meta={"entry_point": row["entry_point"]},
                    )
                )
        return out

    def contamination(self) -> Iterator[tuple[str, str]]:
        # HumanEval's problems with one line of the canonical solution taken out: humaneval_py's
        # strings (its docstrings and canonical solutions) already keep them out of training data.
        return iter(())

    def dataset(self) -> dict[str, Any]:
        return {
            "name": "HumanEval-SingleLineInfilling",
            "version": "88062ff",
            "files": self._files_info(self._file(INFILL_FILE)),
        }
