"""The evaluation's settings: how completions are sampled (``generation=`` presets) and how
programs are executed (``execution.*``), validated as they are read, and its error class."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from omegaconf import DictConfig

from santa.confdict import plain_dict
from santa.errors import SantaError


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
        d: dict[str, Any] = plain_dict(cfg) if isinstance(cfg, DictConfig) else dict(cfg or {})
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
