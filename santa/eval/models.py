"""The models an evaluation samples from, behind the generation interface: a santa checkpoint,
export or run directory (santa's KV-cache generation), any local Hugging Face causal LM
(transformers' ``generate``), or a hub id resolved through the Hugging Face cache."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from santa.eval.settings import EvaluationError

if TYPE_CHECKING:
    import torch

    from santa.model.generation import GenerationModel


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
        raise EvaluationError(
            "model.path is not set: give a checkpoint, an HF export or a run directory (or samples=<file.jsonl>)"
        )
    requested = str(path)
    if not Path(requested).expanduser().exists() and not is_hub_id(requested):
        raise EvaluationError(
            f"model.path={Path(requested).expanduser()} does not exist (and is not a Hugging Face hub id)"
        )
    if backend not in ("auto", "santa", "hf"):
        raise EvaluationError(f"model.backend must be auto, santa or hf, got {backend!r}")
    try:
        path, hub = resolve_model_path(requested, revision)
    except ArtifactError as exc:
        raise EvaluationError(str(exc)) from None
    if hub is not None:
        console.print(
            f"[dim]{escape(hub.repo_id)}: Hugging Face cache snapshot {escape(hub.revision)} ({escape(str(path))})[/dim]"
        )
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
            console.print(
                f"[dim]{escape(str(path))}: not a santa model ({escape(str(exc))}); generating with transformers[/dim]"
            )
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
        model = AutoModelForCausalLM.from_pretrained(hf_dir, **kwargs)
        # transformers' stubs see its decorated .to() as a plain function (self = the device)
        model = model.to(device).eval()  # type: ignore[arg-type]
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
