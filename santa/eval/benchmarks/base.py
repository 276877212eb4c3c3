"""The benchmark plugin contract (entry-point group ``santa.benchmarks``) and where data lives.

A benchmark is built as ``cls(data_dir=..., **params)`` from ``conf/benchmark/<name>.yaml`` and
yields :class:`Problem` s. The harness conditions the model on each problem's ``prompt`` exactly
as given and generates a completion (a continuation of ``prompt``, or, when ``suffix`` is set, the
middle between ``prompt`` and ``suffix``), cuts it with
:meth:`Benchmark.postprocess`, and scores it either by running :meth:`Benchmark.program` in the
sandbox (``scoring = "execution"``) or with :meth:`Benchmark.is_exact_match`
(``scoring = "exact_match"``). A third party subclasses :class:`Benchmark`, sets the class
attributes and implements :meth:`Benchmark.problems`; everything else has a sensible default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

from santa import assets
from santa.assets import sha256_file
from santa.errors import SantaError

Scoring = Literal["execution", "exact_match"]


class BenchmarkDataError(SantaError, FileNotFoundError):
    """Benchmark data that is missing or not what santa expects."""


@dataclass(frozen=True)
class Problem:
    task_id: str
    language: str  # "py" | "js" | "java" (MultiPL-E's names; the sandbox's too)
    # The exact text the model is conditioned on and the completion continues (for infilling:
    # the prefix). A benchmark that conditions on something other than its dataset's text (e.g.
    # MultiPL-E's ``prompt.strip()``) keeps the dataset's text in ``meta["dataset_prompt"]``.
    prompt: str
    stop: tuple[str, ...] = ()  # a completion ends before the first of these
    tests: str = ""  # appended after the completion to make the program (execution scoring)
    suffix: str | None = None  # infilling: the text after the middle the model writes
    answer: str | None = None  # exact-match scoring: the reference middle
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def infill(self) -> bool:
        return self.suffix is not None


def truncate_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> str:
    """``text`` up to (not including) the earliest occurrence of any stop sequence."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1 and i < cut:
                cut = i
    return text[:cut]


def candidate_data_dirs() -> list[Path]:
    """Where benchmark data is looked for when ``data_dir`` is not given: ``$SANTA_DATA`` if set,
    then the copy shipped inside santa (:mod:`santa.assets`)."""
    return assets.data_dirs()


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """``data_dir`` if given (it must exist), else ``$SANTA_DATA``, else the packaged copy."""
    try:
        return assets.data_dir(data_dir)
    except assets.AssetError as e:
        raise BenchmarkDataError(
            f"benchmark data directory does not exist; set data_dir=<dir holding multipl-e_8b88bd5/, "
            f"multipl-e_9b61dc6/, human-eval-infilling_88062ff/> or $SANTA_DATA, or leave both unset to "
            f"use the data shipped with santa ({e})"
        ) from None


class Benchmark:
    """Base class of every benchmark; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    language: ClassVar[str] = ""
    scoring: ClassVar[Scoring] = "execution"
    # The generation preset (conf/generation/<name>.yaml) this benchmark's paper numbers used.
    default_generation: ClassVar[str] = "pass1"
    # Seconds per program in the sandbox; None: the sandbox's default for the language.
    default_timeout: ClassVar[float | None] = None
    # The paper's numbers for SantaCoder 1.1B (final model), metric -> value, and where from.
    paper: ClassVar[dict[str, float]] = {}
    paper_source: ClassVar[str] = ""

    def __init__(self, data_dir: str | Path | None = None, **params: Any) -> None:
        if params:
            raise SantaError(f"benchmark {self.name!r} takes no parameters {sorted(params)}")
        self._data_dir_arg = data_dir

    @cached_property
    def data_dir(self) -> Path:
        return resolve_data_dir(self._data_dir_arg)

    # -- what a plugin implements ------------------------------------------------------------
    def problems(self) -> list[Problem]:
        raise NotImplementedError

    def dataset(self) -> dict[str, Any]:
        """Which data the problems came from: a version and the files with their sha256."""
        return {}

    # -- defaults --------------------------------------------------------------------------------
    def postprocess(self, problem: Problem, text: str) -> str:
        """A model's raw continuation -> the completion that is scored."""
        return truncate_at_stop(text, problem.stop)

    def program(self, problem: Problem, completion: str) -> str:
        """The program whose exit status decides whether ``completion`` passes."""
        if problem.infill:
            return problem.prompt + completion + (problem.suffix or "") + "\n" + problem.tests
        return problem.prompt + completion + "\n" + problem.tests

    def from_dataset_prompt(self, problem: Problem, completion: str) -> str:
        """``completion`` written to continue the dataset's own prompt (``meta["dataset_prompt"]``,
        e.g. human-eval's canonical solutions, or a samples file made for OpenAI's human-eval),
        as a continuation of ``problem.prompt``: the text that conditioning cut off the end of the
        dataset's prompt goes in front. The identity where the two prompts are the same."""
        full = problem.meta.get("dataset_prompt")
        if full is None or full == problem.prompt:
            return completion
        start = full.find(problem.prompt)
        if start < 0:
            raise SantaError(f"{self.name}: problem {problem.task_id}'s prompt is not part of its dataset prompt")
        return full[start + len(problem.prompt) :] + completion

    def is_exact_match(self, problem: Problem, completion: str) -> bool:
        if problem.answer is None:
            raise SantaError(f"{self.name}: problem {problem.task_id} has no reference answer to match")
        return completion.strip() == problem.answer.strip()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "language": self.language,
            "scoring": self.scoring,
            "dataset": self.dataset(),
            "paper": dict(self.paper),
            "paper_source": self.paper_source,
        }

    def _file(self, relative: str) -> Path:
        path = self.data_dir / relative
        if not path.is_file():
            raise BenchmarkDataError(
                f"{self.name}: {path} not found; the benchmark files are described in "
                f"{self.data_dir / 'README.md'} (data_dir={self.data_dir})"
            )
        return path

    def _files_info(self, *paths: Path) -> dict[str, str]:
        return {str(p.relative_to(self.data_dir)): sha256_file(p) for p in paths}
