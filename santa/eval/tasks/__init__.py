"""Built-in benchmarks (entry-point group ``santa.benchmarks``); the contract is in base.py."""

from santa.eval.tasks.base import (
    Benchmark,
    BenchmarkDataError,
    ExactMatchBenchmark,
    Problem,
    resolve_data_dir,
    truncate_at_stop,
)
from santa.eval.tasks.fim import FimJava, FimJs, FimPy, HumanEvalInfillPy, SantaCoderFim
from santa.eval.tasks.multipl_e import (
    HumanEvalPy,
    MultiplE,
    MultiplEHumanEvalJava,
    MultiplEHumanEvalJs,
    MultiplEHumanEvalPy,
    MultiplEMbppJava,
    MultiplEMbppJs,
    MultiplEMbppPy,
)

__all__ = [
    "Benchmark",
    "BenchmarkDataError",
    "ExactMatchBenchmark",
    "FimJava",
    "FimJs",
    "FimPy",
    "HumanEvalInfillPy",
    "HumanEvalPy",
    "MultiplE",
    "MultiplEHumanEvalJava",
    "MultiplEHumanEvalJs",
    "MultiplEHumanEvalPy",
    "MultiplEMbppJava",
    "MultiplEMbppJs",
    "MultiplEMbppPy",
    "Problem",
    "SantaCoderFim",
    "resolve_data_dir",
    "truncate_at_stop",
]
