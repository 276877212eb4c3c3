"""Plugin registry: every filter, attention variant, objective and benchmark is found through
Python entry points, built-ins included, so a third party's plugin is a first-class citizen.

The core asks this module by name and never imports a concrete plugin, and builds every plugin
the same way, :func:`build` (docs/plugins.md has each group's contract):

    registry.build(group, name, params, **context)

``params`` are the user's (a Hydra config node: ``pipeline.params.<step>``,
``model.attention_params``, ``objective.params``, ``benchmark.params``), checked against what the
plugin declares before it is built, so a misspelt key is one error that names the plugin, the
key and the valid ones, for a third party's plugin as for a built-in. ``context`` is what the
core hands every plugin of the group (:data:`CONTRACTS`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from santa.errors import SantaError

GROUPS: tuple[str, ...] = ("santa.filters", "santa.attention", "santa.objectives", "santa.benchmarks")


class UnknownPluginError(SantaError, LookupError):
    """A plugin name that no installed distribution registers."""


class PluginParamsError(SantaError, ValueError):
    """Parameters a plugin does not declare, or a required one left out."""


@dataclass(frozen=True)
class GroupContract:
    """How the core builds the plugins of one group.

    ``context``: the keyword arguments the core passes besides the user's parameters.
    ``params_at``: where a user sets the parameters in Hydra (``{name}``: the step's name).
    ``params_in``: the context argument that carries the parameters instead of keyword
    arguments (attention: they are part of the architecture, ``GPTConfig.attention_params``,
    saved in every checkpoint and read by ``kv_heads(config)`` without building a layer).
    ``declared``: the class attribute a plugin lists its parameter names in (attention:
    ``attention_params``; every group also honours ``plugin_params``), which wins over its
    constructor's signature.
    """

    group: str
    noun: str
    params_at: str
    context: tuple[str, ...] = ()
    params_in: str | None = None
    declared: str = "plugin_params"


CONTRACTS: dict[str, GroupContract] = {
    "santa.filters": GroupContract("santa.filters", "filter", "pipeline.params.{name}"),
    "santa.attention": GroupContract(
        "santa.attention",
        "attention",
        "model.attention_params",
        ("config",),
        params_in="config",
        declared="attention_params",
    ),
    "santa.objectives": GroupContract("santa.objectives", "objective", "objective.params", ("tokenizer",)),
    "santa.benchmarks": GroupContract("santa.benchmarks", "benchmark", "benchmark.params", ("data_dir",)),
}


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


@cache
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


@cache
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


def _init_parameters(init: Any) -> tuple[list[inspect.Parameter], bool] | None:
    """The keyword-capable parameters of ``init`` (``self`` included, for a method) and whether it
    takes ``**kwargs``; None where Python cannot tell (a builtin)."""
    try:
        sig = inspect.signature(init)
    except (TypeError, ValueError):
        return None
    named = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _unique(names: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(n) for n in names))


@cache
def declared_params(
    obj: Any, declared: str = "plugin_params", context: tuple[str, ...] = ()
) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """What ``obj`` (a plugin class or factory) accepts: (the parameter names in order, or None
    for any; the required ones), the group's ``context`` arguments left out.

    A class attribute ``declared`` (a tuple of names) is the plugin's own word. Otherwise the
    constructor's signature says it: a class's ``__init__`` whose ``**kwargs`` go on to its base
    class (santa's benchmarks pass theirs to ``Benchmark``, which refuses leftovers) accepts the
    base's keywords too, up to the first ``__init__`` without ``**kwargs``; ``**kwargs`` that reach
    ``object`` go nowhere. A factory function with ``**kwargs`` accepts anything.
    """
    names = getattr(obj, declared, None)
    if names is not None:
        return _unique(names), ()
    skip = set(context)
    if not inspect.isclass(obj):
        found = _init_parameters(obj)
        if found is None:
            return None, ()
        named, var_kw = found
        required = _unique(p.name for p in named if p.default is p.empty and p.name not in skip)
        return (None if var_kw else _unique(p.name for p in named if p.name not in skip)), required
    accepted: list[str] = []
    required_: tuple[str, ...] | None = None
    for klass in obj.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            break
        found = _init_parameters(init)
        if found is None:
            return None, required_ or ()
        named, var_kw = found
        named = [p for p in named[1:] if p.name not in skip]  # [1:]: self
        if required_ is None:  # the class's own constructor decides what must be given
            required_ = _unique(p.name for p in named if p.default is p.empty)
        accepted += [p.name for p in named]
        if not var_kw:
            break
    return _unique(accepted), required_ or ()


def check_params(group: str, name: str, obj: Any, params: Mapping[str, Any], where: str | None = None) -> None:
    """Refuse a key that ``obj`` (the plugin ``name`` of ``group``) does not declare, or a required
    one left out: one error naming the plugin, the key, where it was set and the valid ones."""
    _check_group(group)
    contract = CONTRACTS[group]
    accepted: tuple[str, ...] | None
    required: tuple[str, ...]
    if contract.params_in is not None:
        # The constructor takes only the context; the declared names are all there is to check.
        names = getattr(obj, contract.declared, None)
        accepted, required = _unique(getattr(obj, "plugin_params", ()) if names is None else names), ()
    else:
        accepted, required = declared_params(obj, contract.declared, contract.context)
    where = where or contract.params_at.format(name=name)
    if accepted is not None:
        unknown = [str(k) for k in params if k not in accepted]
        if unknown:
            takes = f"it takes: {', '.join(accepted)}" if accepted else "it takes none"
            raise PluginParamsError(
                f"{contract.noun} {name!r} has no parameter(s) {', '.join(unknown)} (set in {where}); {takes}"
            )
    missing = [k for k in required if k not in params]
    if missing:
        raise PluginParamsError(f"{contract.noun} {name!r} needs parameter(s) {', '.join(missing)} (set in {where})")


def resolve(group: str, name: str, params: Mapping[str, Any] | None = None, where: str | None = None) -> Any:
    """The plugin ``name`` of ``group`` (as :func:`get`), after checking ``params`` against it."""
    obj = get(group, name)
    check_params(group, name, obj, params or {}, where)
    return obj


def build(
    group: str, name: str, params: Mapping[str, Any] | None = None, *, where: str | None = None, **context: Any
) -> Any:
    """Build the plugin ``name`` of ``group`` from the user's ``params`` and the group's
    ``context`` (:data:`CONTRACTS`): ``plugin(**context, **params)``, or, for a group whose
    parameters travel inside a context argument (attention), ``plugin(**context)``.

    ``where`` names the config key the parameters came from, for the error message (default: the
    group's, e.g. ``objective.params``; a pipeline step run under another name passes its own).
    """
    _check_group(group)
    contract = CONTRACTS[group]
    if set(context) != set(contract.context):
        # The core's mistake, not the user's: every plugin of a group gets the same context.
        raise TypeError(f"{group} plugins are built with context {contract.context}, got {tuple(context)}")
    params = dict(params or {})
    obj = resolve(group, name, params, where)
    if contract.params_in is not None:
        return obj(**context)
    return obj(**context, **params)


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
    declared_params.cache_clear()
