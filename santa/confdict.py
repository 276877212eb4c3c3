"""Typed views of OmegaConf nodes.

``OmegaConf.to_container`` is typed as returning any container (dict, list, str, None) with keys
of any primitive type, so every caller would have to narrow it again; the config groups santa
reads as keyword arguments are mappings with string keys, and this says so in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf


def plain_dict(node: Any, *, resolve: bool = True) -> dict[str, Any]:
    """``node`` (a ``DictConfig``, or an already plain mapping) as a plain ``dict``, nested
    configs converted too and, with ``resolve``, interpolations resolved. Raises TypeError for
    anything that is not a mapping (a list, a scalar, None)."""
    out: Any = OmegaConf.to_container(node, resolve=resolve) if OmegaConf.is_config(node) else node
    if not isinstance(out, Mapping):
        raise TypeError(f"expected a mapping (a config group), got {type(node).__name__}: {node!r}")
    return dict(out)
