"""Benchmarks own their prompts and scoring: a new benchmark with its own metric is one class and
one entry point, evaluated by the unchanged harness (from a samples file and from a model), and
the orchestration modules never switch on what a benchmark's scoring is."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose_eval

from santa import registry
from santa.eval.harness import evaluate

# A third party's benchmark: "first line exact match". Its own prompt format (a header line),
# its own postprocessing (the first line only), its own judge and metric (the fraction of
# problems with at least one right sample); nothing is executed.
PLUGIN = """
from santa.eval.tasks import Benchmark, Problem

FUNCTIONS = [
    ("def add(a, b):\\n", "    return a + b"),
    ("def neg(x):\\n", "    return -x"),
    ("def first(xs):\\n", "    return xs[0]"),
    ("def is_even(n):\\n", "    return n % 2 == 0"),
]


class FirstLine(Benchmark):
    name, language, scoring = "first_line_py", "py", "first_line_exact_match"
    executes = False
    default_generation = "greedy"

    def problems(self):
        return [Problem(f"first_line/{i}", "py", prompt, answer=answer) for i, (prompt, answer) in enumerate(FUNCTIONS)]

    def dataset(self):
        return {"name": "first-line", "version": "1"}

    def prompt(self, problem):
        return "# Python 3\\n" + problem.prompt

    def postprocess(self, problem, text):
        return text.lstrip("\\n").split("\\n", 1)[0]

    def judge(self, problem, completion, execution=None):
        return completion.rstrip() == problem.answer

    def samples_needed(self, ks):
        return None

    def aggregate(self, records, ks):
        per_task = {}
        for r in records:
            per_task.setdefault(r["task_id"], []).append(r["passed"])
        return {self.scoring: sum(any(v) for v in per_task.values()) / len(per_task)}
"""


@pytest.fixture
def first_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The plugin installed the way pip would: a module and a dist-info with one entry point."""
    site = tmp_path / "site"
    info = site / "santa_first_line-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "santa_first_line.py").write_text(textwrap.dedent(PLUGIN))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: santa-first-line\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[santa.benchmarks]\nfirst_line_py = santa_first_line:FirstLine\n")
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield registry.get("santa.benchmarks", "first_line_py")
    registry.refresh()


def test_a_new_metric_is_one_class_and_one_entry_point(first_line, tmp_path: Path) -> None:
    problems = first_line().problems()
    samples = tmp_path / "s.jsonl"
    rows = [
        (problems[0], "    return a + b"),  # right
        (problems[0], "    return a - b"),
        (problems[1], "    return x"),  # wrong only
        (problems[2], "    return xs[0]   "),  # right (trailing blanks)
        (problems[3], ""),  # empty
    ]
    samples.write_text("".join(json.dumps({"task_id": p.task_id, "completion": c}) + "\n" for p, c in rows))
    out = tmp_path / "out"
    res = evaluate(
        compose_eval(f"run_dir={out}", "benchmark.name=first_line_py", f"samples={samples}", "progress=false")
    )
    assert res["scores"] == {"first_line_exact_match": 0.5} and res["scoring"] == "first_line_exact_match"
    saved = json.loads((out / "results.json").read_text())
    assert [s["passed"] for s in saved["samples"]] == [True, False, False, True, False]
    assert saved["samples"][0]["prompt"] == "# Python 3\ndef add(a, b):\n"  # the benchmark's prompt()
    assert not (out / "executions.jsonl").exists()  # nothing ran in the sandbox
    assert "first_line_exact_match" in (out / "results.md").read_text()


def test_the_harness_samples_with_the_benchmark_s_prompt_and_postprocess(first_line, tmp_path: Path) -> None:
    from santa.data.tokenizer import padded_vocab_size, special_ids, train_tokenizer
    from santa.model import GPT, GPTConfig
    from santa.model.hf import export_hf

    bench = first_line()
    tokenizer = train_tokenizer([bench.prompt(p) + p.answer + "\n" for p in bench.problems()] * 20, vocab_size=280)
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=padded_vocab_size(len(tokenizer)), n_embd=32, n_layer=2, n_head=4, n_positions=64, dropout=0.0
    )
    eot = special_ids(tokenizer).eot
    model = export_hf(GPT(cfg).eval(), tmp_path / "model", tokenizer=tokenizer, bos_token_id=eot, eos_token_id=eot)
    out = tmp_path / "out"
    res = evaluate(
        compose_eval(
            f"run_dir={out}",
            "benchmark.name=first_line_py",
            f"model.path={model}",
            "generation=greedy",
            "generation.max_new_tokens=12",
            "progress=false",
        )
    )
    assert set(res["scores"]) == {"first_line_exact_match"}
    saved = json.loads((out / "results.json").read_text())
    for s, p in zip(saved["samples"], bench.problems()):
        assert s["prompt"] == bench.prompt(p)  # conditioned on the benchmark's prompt
        assert s["completion"] == bench.postprocess(p, s["raw"]) and "\n" not in s["completion"]
        assert s["passed"] == (s["completion"].rstrip() == p.answer)


@pytest.mark.parametrize("module", ["harness", "settings", "models", "sampling", "scoring"])
def test_the_orchestration_never_switches_on_a_benchmark_s_scoring(module: str) -> None:
    source = (ROOT / "santa" / "eval" / f"{module}.py").read_text()
    for needle in (".scoring ==", ".scoring !=", "exact_match", "is_exact_match", "pass_at_k"):
        assert needle not in source, (module, needle)


def test_a_benchmark_that_only_says_exact_match_is_told_what_to_subclass() -> None:
    from santa.eval.tasks import Benchmark

    with pytest.raises(TypeError, match="subclass santa.eval.tasks.ExactMatchBenchmark"):
        type("Old", (Benchmark,), {"scoring": "exact_match"})
