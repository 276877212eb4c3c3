"""What santa registers in Hydra's ConfigStore: the schema that opens every plugin group's
parameters to third parties.

Hydra composes in struct mode: an override may only set a key that some config file already has,
so ``pipeline.params.basic.max_line_length=500`` works while a third-party filter's
``pipeline.params.license.allowed=[mit]`` needs a ``+``. The parameter nodes below are stored
with the struct flag off, and ``conf/train.yaml`` / ``evaluate.yaml`` / ``prepare.yaml`` put them
first in their defaults (``santa_schema@_global_: <name>``), so the flag holds through
composition: every group's parameters take new keys the same way, a built-in's or anyone's.
Checking the keys is the registry's job (``santa.registry.check_params``), which knows what each
plugin declares and names the valid keys, where Hydra could only say "not in struct".

Registered by santa's Hydra plugin module (``hydra_plugins/santa_schema``), which Hydra imports
before composing any config, so ``@hydra.main``, the compose API and tests all see it.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

GROUP = "santa_schema"

# Per primary config: the nodes that hold plugin parameters (docs/plugins.md, "Parameters").
OPEN_PARAMS: dict[str, tuple[str, ...]] = {
    "train": ("pipeline.params", "model.attention_params", "objective.params"),
    "prepare": ("pipeline.params",),
    "evaluate": ("benchmark.params",),
}


def schema(primary: str) -> DictConfig:
    """The node for one primary config: each parameter node empty and open to new keys."""
    node = OmegaConf.create({})
    for key in OPEN_PARAMS[primary]:
        OmegaConf.update(node, key, {}, force_add=True)
        OmegaConf.set_struct(OmegaConf.select(node, key), False)
    return node


def register() -> None:
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for primary in OPEN_PARAMS:
        store.store(group=GROUP, name=primary, node=schema(primary), provider="santa")
