"""The benchmark plugin contract (entry-point group ``santa.benchmarks``) and where data lives.

A benchmark is built as ``cls(data_dir=..., **params)`` from ``conf/benchmark/<name>.yaml``. Like
a ``Task`` of BigCode's evaluation harness it owns everything about itself; the harness only
samples, caches, executes and writes:

- :meth:`Benchmark.problems`: the problems (:class:`Problem`, the dataset's own text);
- :meth:`Benchmark.prompt`: the text the model is conditioned on (for infilling: the prefix; the
  suffix is ``problem.suffix``);
- :meth:`Benchmark.postprocess`: a model's raw continuation -> the completion that is scored;
- :attr:`Benchmark.executes` and :meth:`Benchmark.program`: whether a completion is judged by
  running a program in the sandbox, and which program;
- :meth:`Benchmark.judge`: whether one sample is right (given the sandbox's result when it ran);
- :meth:`Benchmark.aggregate` and :meth:`Benchmark.samples_needed`: the scores of all samples
  (``{"pass@1": ...}``), and how many samples per problem they need;
- :meth:`Benchmark.contamination`: the texts that training data must not contain for the
  benchmark to stay unseen (the ``decontaminate`` pipeline step asks every installed benchmark).

:class:`Benchmark`'s defaults are pass@k of programs run in the sandbox;
:class:`ExactMatchBenchmark`'s are the fraction of completions equal to the problem's ``answer``.
A third party subclasses either, sets the class attributes and implements ``problems``; a new
metric overrides ``judge``/``aggregate`` (example: ``tests/test_benchmark_plugins.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from santa import assets
from santa.assets import sha256_file
from santa.errors import SantaError
from santa.eval.settings import EvaluationError


class BenchmarkDataError(SantaError, FileNotFoundError):
    """Benchmark data that is missing or not what santa expects."""


@dataclass(frozen=True)
class Problem:
    task_id: str
    language: str  # "py" | "js" | "java" (MultiPL-E's names; the sandbox's too)
    # The dataset's text before the completion (for infilling: the prefix). What the model is
    # conditioned on is Benchmark.prompt(problem), which may differ (MultiPL-E: its strip()).
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
    """Base class of every benchmark; see the module docstring for the contract. The defaults
    score by execution: a sample passes when its program exits 0 in the sandbox; pass@k."""

    name: ClassVar[str] = ""
    language: ClassVar[str] = ""
    # What the scores are called in results.json and the tables ("execution", "exact_match", ...).
    scoring: ClassVar[str] = "execution"
    # Whether samples are judged by running program() in the sandbox (the harness then checks
    # the language's toolchain first and hands judge() the result).
    executes: ClassVar[bool] = True
    # The generation preset (conf/generation/<name>.yaml) this benchmark's paper numbers used.
    default_generation: ClassVar[str] = "pass1"
    # Seconds per program in the sandbox; None: the sandbox's default for the language.
    default_timeout: ClassVar[float | None] = None
    # The paper's numbers for SantaCoder 1.1B (final model), metric -> value, and where from.
    paper: ClassVar[dict[str, float]] = {}
    paper_source: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Before benchmarks owned their scoring, `scoring = "exact_match"` on a Benchmark switched
        # the harness; now that label alone would score by execution: say so at import.
        if cls.scoring == "exact_match" and cls.executes and cls.judge is Benchmark.judge:
            raise TypeError(
                f"{cls.__name__}: scoring='exact_match' needs the exact-match behaviour: subclass "
                "santa.eval.tasks.ExactMatchBenchmark instead of Benchmark"
            )

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

    # -- prompts and completions -----------------------------------------------------------------
    def prompt(self, problem: Problem) -> str:
        """The exact text the model is conditioned on (for infilling: the prefix)."""
        return problem.prompt

    def postprocess(self, problem: Problem, text: str) -> str:
        """A model's raw continuation -> the completion that is scored."""
        return truncate_at_stop(text, problem.stop)

    def from_dataset_prompt(self, problem: Problem, completion: str) -> str:
        """``completion`` written to continue the dataset's own prompt (``problem.prompt``: e.g.
        human-eval's canonical solutions, or a samples file made for OpenAI's human-eval), as a
        continuation of :meth:`prompt`: what conditioning cut off the end of the dataset's prompt
        goes in front. The identity where the two are the same."""
        ours = self.prompt(problem)
        if ours == problem.prompt:
            return completion
        start = problem.prompt.find(ours)
        if start < 0:
            raise SantaError(f"{self.name}: problem {problem.task_id}: the prompt is not part of the dataset's prompt")
        return problem.prompt[start + len(ours) :] + completion

    # -- scoring -------------------------------------------------------------------------------
    def program(self, problem: Problem, completion: str) -> str:
        """The program whose exit status decides whether ``completion`` passes."""
        if problem.infill:
            return self.prompt(problem) + completion + (problem.suffix or "") + "\n" + problem.tests
        return self.prompt(problem) + completion + "\n" + problem.tests

    def judge(self, problem: Problem, completion: str, execution: Any = None) -> bool:
        """Whether one sample is right. ``execution``: the sandbox's result of :meth:`program`
        (``status``, ``returncode``, ``stderr_tail``...) when :attr:`executes`, else None."""
        return execution is not None and str(execution.status) == "passed"

    def samples_needed(self, ks: Sequence[int]) -> tuple[str, int] | None:
        """The metric that needs the most samples per problem and how many it needs (checked
        before anything is generated or run), or None when any number will do."""
        k = max(ks)
        return f"pass@{k}", k

    def aggregate(self, records: Sequence[dict[str, Any]], ks: Sequence[int]) -> dict[str, float]:
        """The scores of per-sample records (``task_id``, ``passed``...): the unbiased pass@k of
        Chen et al. for each k, averaged over problems."""
        from santa.eval.passk import pass_at_k

        per_task = _per_task(records)
        if not per_task:
            return {}
        n = [len(v) for v in per_task.values()]
        c = [sum(v) for v in per_task.values()]
        refused = [k for k in ks if k > min(n)]
        if refused:
            raise EvaluationError(
                f"pass@{refused[0]} needs at least {refused[0]} samples per problem, but some problem has only {min(n)}; "
                "pass@k with k > n is not estimable (raise generation.n_samples or lower generation.ks)"
            )
        return {f"pass@{k}": pass_at_k(n, c, k) for k in ks}

    # -- decontamination -------------------------------------------------------------------------
    def contamination(self) -> Iterator[tuple[str, str]]:
        """The texts no training file may contain if this benchmark is to stay unseen, as
        ``(label, text)`` pairs. The ``decontaminate`` pipeline step drops every file holding one
        of them (case-insensitively, after ``strip()``; texts shorter than its ``min_chars`` are
        too common to mean anything and are skipped); the reject reason quotes the label, whose
        first word (up to a "/") names the source in the step's counts. Default: every
        problem's prompt, the dataset's own text."""
        for problem in self.problems():
            yield f"{self.name} {problem.task_id} prompt", problem.prompt

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


class ExactMatchBenchmark(Benchmark):
    """Scored by comparing each completion with the problem's ``answer`` after ``strip()``; the
    score is the mean over problems of the fraction of matching samples. Nothing is executed."""

    scoring: ClassVar[str] = "exact_match"
    executes: ClassVar[bool] = False

    def is_exact_match(self, problem: Problem, completion: str) -> bool:
        if problem.answer is None:
            raise SantaError(f"{self.name}: problem {problem.task_id} has no reference answer to match")
        return completion.strip() == problem.answer.strip()

    def judge(self, problem: Problem, completion: str, execution: Any = None) -> bool:
        return self.is_exact_match(problem, completion)

    def samples_needed(self, ks: Sequence[int]) -> tuple[str, int] | None:
        return None

    def aggregate(self, records: Sequence[dict[str, Any]], ks: Sequence[int]) -> dict[str, float]:
        per_task = _per_task(records)
        if not per_task:
            return {}
        return {self.scoring: sum(sum(v) / len(v) for v in per_task.values()) / len(per_task)}


def _per_task(records: Sequence[dict[str, Any]]) -> dict[str, list[bool]]:
    per_task: dict[str, list[bool]] = {}
    for r in records:
        per_task.setdefault(r["task_id"], []).append(bool(r["passed"]))
    return per_task
