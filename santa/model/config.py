"""One small dataclass describes every model size and attention variant (litgpt's habit)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from santa import registry
from santa.errors import SantaError


class ModelConfigError(SantaError, ValueError):
    """A model configuration that cannot build a model; the message names the field."""


def _plain(value: Any) -> Any:
    """Mappings and sequences (a config library's containers included) as dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def attention_reading(field_name: str) -> list[str]:
    """The registered attention variants that read the optional ``GPTConfig`` field
    ``field_name``: each plugin lists the fields it reads beyond the common ones in its
    ``config_fields`` class attribute, so the config names no variant itself."""
    return [
        name
        for name in registry.names("santa.attention")
        if field_name in getattr(registry.get("santa.attention", name), "config_fields", ())
    ]


def _reads_field(attention: str, field_name: str) -> bool:
    try:
        cls = registry.get("santa.attention", attention)
    except registry.UnknownPluginError:
        return False  # building the model names the valid variants
    return field_name in getattr(cls, "config_fields", ())


@dataclass
class GPTConfig:
    """A GPT-2-style decoder. Defaults follow SantaCoder where the paper fixes a value.

    ``vocab_size`` is the number of embedding rows, already padded (SantaCoder: 49,152 BPE tokens +
    special tokens, padded to a multiple of 128 = 49,280); the tokenizer may use fewer ids.
    ``attention`` names a plugin of the ``santa.attention`` entry-point group; ``n_query_groups``
    is the number of key/value heads for the variants that read it (a plugin says so in its
    ``config_fields`` class attribute; among the built-ins, grouped-query attention) and must stay
    ``None`` for the others, so a config never carries a setting that its attention silently
    ignores.

    ``attention_params`` holds the parameters of an attention plugin beyond the built-ins' fields
    (a sliding window's width, ...), passed through untouched to the plugin, which reads them from
    the config it is built with. The plugin lists the keys it reads (its ``attention_params`` class
    attribute) and building the model refuses any other key, for the same reason.
    """

    vocab_size: int
    n_embd: int
    n_layer: int
    n_head: int
    n_positions: int = 2048
    n_inner: int | None = None
    attention: str = "mqa"
    n_query_groups: int | None = None
    attention_params: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.022
    bias: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_embd", "n_layer", "n_head", "n_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ModelConfigError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ModelConfigError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) "
                "so every head has the same size"
            )
        if self.n_inner is not None and (not isinstance(self.n_inner, int) or self.n_inner <= 0):
            raise ModelConfigError(f"GPTConfig.n_inner must be a positive int or None, got {self.n_inner!r}")
        if not isinstance(self.attention, str) or not self.attention:
            raise ModelConfigError(f"GPTConfig.attention must name an attention plugin, got {self.attention!r}")
        if self.n_query_groups is not None:
            if not _reads_field(self.attention, "n_query_groups"):
                readers = attention_reading("n_query_groups")
                choices = " or ".join(repr(name) for name in readers) or "(no installed variant)"
                raise ModelConfigError(
                    f"GPTConfig.n_query_groups={self.n_query_groups} is only meaningful with "
                    f"attention={choices} (got attention={self.attention!r}); set it to None"
                )
            if not isinstance(self.n_query_groups, int) or self.n_query_groups <= 0:
                raise ModelConfigError(f"GPTConfig.n_query_groups must be a positive int, got {self.n_query_groups!r}")
            if self.n_head % self.n_query_groups:
                raise ModelConfigError(
                    f"GPTConfig.n_query_groups ({self.n_query_groups}) must divide n_head ({self.n_head})"
                )
        if isinstance(self.attention_params, Mapping):  # e.g. a Hydra DictConfig node
            self.attention_params = _plain(self.attention_params)
        if not isinstance(self.attention_params, dict) or not all(isinstance(k, str) for k in self.attention_params):
            raise ModelConfigError(
                f"GPTConfig.attention_params must be a dict with str keys, got {self.attention_params!r}"
            )
        try:  # it travels in checkpoints and JSON summaries
            json.dumps(self.attention_params)
        except (TypeError, ValueError) as exc:
            raise ModelConfigError(f"GPTConfig.attention_params must hold plain JSON values: {exc}") from None
        if not 0.0 <= self.dropout < 1.0:
            raise ModelConfigError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.layer_norm_epsilon <= 0:
            raise ModelConfigError(f"GPTConfig.layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon!r}")
        if self.initializer_range <= 0:
            raise ModelConfigError(f"GPTConfig.initializer_range must be > 0, got {self.initializer_range!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_dim(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["attention_params"]:
            # Without plugin parameters a config serialises as before the field existed, so older
            # checkpoints still match their configuration on resume.
            del d["attention_params"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        # Refusing unknown keys catches typos (``n_heads``) that would otherwise silently fall back
        # to a default and train a different model than the one asked for.
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelConfigError(
                f"unknown GPTConfig key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
            )
        return cls(**dict(d))


def santacoder_1b(**overrides: Any) -> GPTConfig:
    """The final SantaCoder: 24 x 2048, 16 heads, MQA, 1,124,886,528 parameters."""
    base: dict[str, Any] = dict(
        vocab_size=49280,
        n_positions=2048,
        n_embd=2048,
        n_layer=24,
        n_head=16,
        n_inner=8192,
        attention="mqa",
    )
    base.update(overrides)
    return GPTConfig(**base)
