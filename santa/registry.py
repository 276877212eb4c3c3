"""Plugin registry: every filter, attention variant, objective and benchmark is found through
Python entry points, built-ins included, so a third party's plugin is a first-class citizen.

The core asks this module by name and never imports a concrete plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from santa.errors import SantaError

GROUPS: tuple[str, ...] = ("santa.filters", "santa.attention", "santa.objectives", "santa.benchmarks")


class UnknownPluginError(SantaError, LookupError):
    """A plugin name that no installed distribution registers."""


@dataclass(frozen=True)
class PluginInfo:
    group: str
    name: str
    target: str
    distribution: str
    version: str


def _check_group(group: str) -> None:
    if group not in GROUPS:
        raise UnknownPluginError(f"unknown plugin group {group!r}; groups are: {', '.join(GROUPS)}")


@lru_cache(maxsize=None)
def _entry_points(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        # The first registration wins; a duplicate name from another distribution is reported by
        # `santa plugins` rather than silently shadowing the built-in.
        found.setdefault(ep.name, ep)
    return found


def names(group: str) -> list[str]:
    """Sorted names registered under ``group``."""
    _check_group(group)
    return sorted(_entry_points(group))


@lru_cache(maxsize=None)
def get(group: str, name: str) -> Any:
    """Load the object registered as ``name`` in ``group`` (a class or factory)."""
    _check_group(group)
    eps = _entry_points(group)
    if name not in eps:
        valid = ", ".join(sorted(eps)) or "(none installed)"
        raise UnknownPluginError(
            f"no plugin named {name!r} in group {group!r}; valid names: {valid}. "
            f"Third-party plugins register under [project.entry-points.{group!r}] and must be "
            "installed (pip install -e <plugin dir>) to be found."
        )
    return eps[name].load()


def describe() -> list[PluginInfo]:
    """Every registered plugin, with the distribution that provides it."""
    out: list[PluginInfo] = []
    for group in GROUPS:
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            dist = ep.dist
            out.append(
                PluginInfo(
                    group=group,
                    name=ep.name,
                    target=ep.value,
                    distribution=dist.metadata["Name"] if dist is not None else "?",
                    version=dist.version if dist is not None else "?",
                )
            )
    return out


def refresh() -> None:
    """Forget cached lookups (after installing a plugin into the running interpreter)."""
    _entry_points.cache_clear()
    get.cache_clear()
