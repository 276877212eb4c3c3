"""Sampling: encode each problem's prompt (completion, or SantaCoder's FIM layout), generate in
batches (left-padded, KV cache, per-problem stop sequences), and cache every work unit in
``generations.jsonl`` so an interrupted run resumes. Sampling is seeded per batch from ``seed``
and the batch's first work unit, and batches are laid out from the whole problem list, so a
resumed run draws the same samples as an uninterrupted one."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from santa.eval import keyed_jsonl
from santa.eval.models import Generator
from santa.eval.settings import EvaluationError, GenerationSettings
from santa.eval.tasks.base import Problem

if TYPE_CHECKING:
    import torch


def end_token_ids(tokenizer: Any) -> list[int]:
    """Tokens that end a completion: end-of-text and, where the vocabulary has them, the FIM
    sentinels (none can be part of a program, and a FIM model ends a middle with one)."""
    from santa.data.tokenizer import EOT, FIM_SPELLINGS

    vocab = tokenizer.get_vocab()
    ids: list[int] = []
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.append(int(tokenizer.eos_token_id))
    for tok in (EOT, *(t for spelling in FIM_SPELLINGS.values() for t in spelling)):
        if tok in vocab:
            ids.append(int(vocab[tok]))
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise EvaluationError("the tokenizer has no end-of-text token; generation could not stop")
    return ids


def encode_prompt(
    tokenizer: Any, problem: Problem, budget: int, fim_mode: str = "psm", prompt: str | None = None
) -> tuple[list[int], bool]:
    """Token ids of ``problem``'s prompt within ``budget`` tokens, and whether it had to be cut.

    Completion: the prompt's last ``budget`` tokens. Infilling: SantaCoder's FIM prompt (the
    training layout with an empty middle, ``santa.data.fim_format.infill_prompt``); when too long,
    the prefix loses its start and the suffix its end, each keeping at least half the room.
    """
    if budget < 1:
        raise EvaluationError(f"no room for a prompt ({budget} tokens)")
    text = problem.prompt if prompt is None else prompt  # the benchmark's prompt(problem)
    if not problem.infill:
        ids = list(tokenizer.encode(text, add_special_tokens=False))
        return (ids[-budget:], True) if len(ids) > budget else (ids, False)

    from santa.data.fim_format import fim_format, infill_prompt
    from santa.data.tokenizer import TokenizerError, special_ids

    spm = fim_mode == "spm"
    try:
        ids = list(infill_prompt(tokenizer, text, problem.suffix or "", spm=spm))
        sentinels = special_ids(tokenizer)
    except TokenizerError as exc:
        raise EvaluationError(f"infilling needs a tokenizer with FIM sentinel tokens: {exc}") from exc
    if len(ids) <= budget:
        return ids, False
    room = budget - 3  # the three sentinels
    if room < 2:
        raise EvaluationError(f"no room for an infilling prompt ({budget} tokens)")
    pre = list(tokenizer.encode(text, add_special_tokens=False))
    suf = list(tokenizer.encode(problem.suffix or "", add_special_tokens=False))
    keep_suf = min(len(suf), max(room // 2, room - len(pre)))
    keep_pre = min(len(pre), room - keep_suf)
    return fim_format(pre[len(pre) - keep_pre :], [], suf[:keep_suf], sentinels, spm), True


class _StopWatch:
    """The ``stop`` callback of generation: a row is done once its generated text contains one of
    its problem's stop sequences. Only the last few tokens are decoded per step (a stop sequence
    of L ASCII characters spans at most L byte-level tokens); the exact cut happens on the full
    text afterwards."""

    def __init__(self, tokenizer: Any, stops: Sequence[tuple[str, ...]]) -> None:
        self.tokenizer = tokenizer
        self.stops = [tuple(s for s in row if s) for row in stops]
        longest = max((len(s.encode()) for row in self.stops for s in row), default=0)
        self.window = longest + 2
        self.done = [False] * len(stops)

    def __call__(self, generated: torch.Tensor) -> torch.Tensor:
        import torch

        rows = [r for r, s in enumerate(self.stops) if s and not self.done[r]]
        if rows:
            tails = generated[rows, -self.window :].tolist()
            texts = self.tokenizer.batch_decode(tails, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            for r, text in zip(rows, texts):
                if any(s in text for s in self.stops[r]):
                    self.done[r] = True
        return torch.tensor(self.done, dtype=torch.bool)


@dataclass(frozen=True)
class _Unit:
    """Samples ``first .. first + count - 1`` of one problem: what is cached as one line."""

    problem: int
    first: int
    count: int


def plan_batches(problem_lengths: Sequence[int], n_samples: int, batch_size: int) -> list[list[_Unit]]:
    """Work units (up to ``batch_size`` samples of one problem) packed into batches of up to
    ``batch_size`` rows, longest prompts first (similar lengths pad little; an out-of-memory shows
    up at the start, not hours in)."""
    order = sorted(range(len(problem_lengths)), key=lambda i: (-problem_lengths[i], i))
    units = [
        _Unit(p, first, min(batch_size, n_samples - first)) for p in order for first in range(0, n_samples, batch_size)
    ]
    batches: list[list[_Unit]] = []
    rows = 0
    for u in units:
        if batches and rows + u.count <= batch_size:
            batches[-1].append(u)
            rows += u.count
        else:
            batches.append([u])
            rows = u.count
    return batches


def _unit_key(settings_key: str, problem: Problem, prompt: str, unit: _Unit) -> str:
    h = hashlib.sha256()
    for part in (settings_key, problem.task_id, prompt, problem.suffix or "", str(unit.first), str(unit.count)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _seed(seed: int, key: str) -> int:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:15], 16)


@dataclass
class GenerationOutput:
    raw: dict[str, list[str]]  # task_id -> continuations as generated (cut at an end token)
    prompt_truncated: set[str]
    # task_id -> the exact text the model was conditioned on: its prompt tokens decoded (FIM
    # sentinels included; the kept part only, where the prompt had to be cut).
    prompts: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    new_tokens: int = 0
    rows: int = 0
    cached_units: int = 0
    generated_units: int = 0


def generate_completions(
    generator: Generator,
    problems: Sequence[Problem],
    settings: GenerationSettings,
    *,
    settings_key: str,
    prompts: Sequence[str] | None = None,
    cache_file: Path | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> GenerationOutput:
    """``settings.n_samples`` continuations of every problem, reusing those in ``cache_file``.
    ``prompts``: the text each problem conditions the model on (its benchmark's ``prompt()``;
    default: the problem's own ``prompt``)."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = console or Console(stderr=True)
    tok = generator.tokenizer
    model = generator.model
    budget = int(model.max_length) - settings.max_new_tokens
    if budget < 1:
        raise EvaluationError(
            f"generation.max_new_tokens={settings.max_new_tokens} leaves no room for a prompt in the model's "
            f"{model.max_length}-token context; lower it (e.g. generation.max_new_tokens={max(1, model.max_length // 4)})"
        )
    texts_in = [p.prompt for p in problems] if prompts is None else list(prompts)
    if len(texts_in) != len(problems):
        raise EvaluationError(f"{len(texts_in)} prompts for {len(problems)} problems")
    encoded = [encode_prompt(tok, p, budget, settings.fim_mode, prompt=t) for p, t in zip(problems, texts_in)]
    truncated = {p.task_id for p, (_, cut) in zip(problems, encoded) if cut}
    if truncated:
        console.print(
            f"[yellow]note:[/yellow] {len(truncated)} of {len(problems)} prompts exceed the model's context "
            f"({model.max_length} tokens minus {settings.max_new_tokens} new); their start was cut "
            "(marked prompt_truncated in results.json)"
        )
    end_ids = list(dict.fromkeys([*end_token_ids(tok), *generator.extra_end_ids]))
    pad_id = end_ids[0]
    device = generator.device

    cache = keyed_jsonl.read(cache_file) if cache_file is not None else {}
    batches = plan_batches([len(ids) for ids, _ in encoded], settings.n_samples, settings.batch_size)
    raw: dict[str, list[str | None]] = {p.task_id: [None] * settings.n_samples for p in problems}
    out = GenerationOutput(raw={}, prompt_truncated=truncated)
    out.prompts = {
        p.task_id: tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        for p, (ids, _) in zip(problems, encoded)
    }

    def keep(unit: _Unit, texts: list[str]) -> None:
        raw[problems[unit.problem].task_id][unit.first : unit.first + unit.count] = texts

    todo: list[list[_Unit]] = []
    for batch in batches:
        hits = [cache.get(_unit_key(settings_key, problems[u.problem], texts_in[u.problem], u)) for u in batch]
        if all(h is not None and len(h["raw"]) == u.count for h, u in zip(hits, batch)):
            for h, u in zip(hits, batch):
                keep(u, h["raw"])  # type: ignore[index]
            out.cached_units += len(batch)
        else:
            todo.append(batch)
    if out.cached_units:
        console.print(f"resuming: {out.cached_units} cached work units reused from {cache_file}")

    total_rows = sum(u.count for b in todo for u in b)
    fh = keyed_jsonl.open_for_append(cache_file) if cache_file is not None else None
    t0 = time.perf_counter()
    try:
        with Progress(
            TextColumn("generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not progress or total_rows == 0,
        ) as bar:
            task = bar.add_task("generate", total=total_rows)
            for batch in todo:
                rows_ids: list[list[int]] = []
                stops: list[tuple[str, ...]] = []
                for u in batch:
                    ids = encoded[u.problem][0]
                    rows_ids += [ids] * u.count
                    stops += [problems[u.problem].stop] * u.count
                width = max(len(r) for r in rows_ids)
                input_ids = torch.full((len(rows_ids), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows_ids), width), dtype=torch.long)
                for r, ids in enumerate(rows_ids):  # LEFT padding: every row ends at the same position
                    input_ids[r, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                    mask[r, width - len(ids) :] = 1
                first_key = _unit_key(settings_key, problems[batch[0].problem], texts_in[batch[0].problem], batch[0])
                gen = torch.Generator(device=device).manual_seed(_seed(settings.seed, first_key))
                watch = _StopWatch(tok, stops) if any(stops) else None
                result = model.generate(
                    input_ids.to(device),
                    settings.max_new_tokens,
                    attention_mask=mask.to(device),
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                    top_k=settings.top_k,
                    eos_token_id=end_ids,
                    pad_token_id=pad_id,
                    generator=gen,
                    stop=watch,
                )
                new = result[:, width:].tolist()
                texts = []
                for ids in new:
                    cut = next((i for i, t in enumerate(ids) if t in end_ids), len(ids))
                    out.new_tokens += cut
                    texts.append(tok.decode(ids[:cut], skip_special_tokens=False, clean_up_tokenization_spaces=False))
                row = 0
                for u in batch:
                    part = texts[row : row + u.count]
                    row += u.count
                    keep(u, part)
                    if fh is not None:
                        rec = {
                            "key": _unit_key(settings_key, problems[u.problem], texts_in[u.problem], u),
                            "task_id": problems[u.problem].task_id,
                            "first": u.first,
                            "raw": part,
                        }
                        fh.write(json.dumps(rec) + "\n")
                if fh is not None:
                    fh.flush()
                out.generated_units += len(batch)
                out.rows += len(rows_ids)
                bar.advance(task, len(rows_ids))
    finally:
        if fh is not None:
            fh.close()
    out.seconds = time.perf_counter() - t0
    out.raw = {k: [t or "" for t in v] for k, v in raw.items()}
    return out
