"""From the Hydra config (conf/pipeline/*, conf/engine/*) to a :class:`PipelineConfig`; shared
by `santa prepare` and train.py's corpus stage."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from santa import assets, registry
from santa.filters.base import StepContext
from santa.pipeline.spec import PipelineConfig, PipelineError, StepSpec


def benchmark_dirs(given: str | Path | None) -> list[Path]:
    """Where decontamination looks for benchmark files: the user's folder (``benchmark_data=``,
    else ``$SANTA_DATA``) first, then the copy shipped inside santa."""
    try:
        return assets.data_dirs(given)
    except assets.AssetError as e:
        raise PipelineError(f"benchmark_data: {e}") from None


def _plain(node: Any) -> Any:
    return (
        OmegaConf.to_container(node, resolve=True)
        if isinstance(node, DictConfig) or OmegaConf.is_config(node)
        else node
    )


def step_specs(pipeline: DictConfig | dict[str, Any]) -> list[StepSpec]:
    pipeline = _plain(pipeline)
    params = pipeline.get("params") or {}
    steps = pipeline.get("steps") or []
    if isinstance(steps, str):
        raise PipelineError(f"pipeline.steps must be a list, e.g. pipeline.steps=[basic,near_dedup]; got {steps!r}")
    # pipeline.params takes any key (santa/config_store.py), so a misspelt step name would be
    # silently ignored: a key must name a step, an installed filter (a preset's parameters for a
    # step it does not run) or a step of its own (with `plugin`).
    filters, step_names = set(registry.names("santa.filters")), {str(s) for s in steps}
    for name, p in params.items():
        if str(name) not in step_names | filters and not (isinstance(p, dict) and "plugin" in p):
            raise PipelineError(
                f"pipeline.params.{name}: no step {name!r} in pipeline.steps ({', '.join(map(str, steps))}) "
                f"and no installed filter of that name ({', '.join(sorted(filters))}); to run a filter under "
                f"another name, set pipeline.params.{name}.plugin=<filter>"
            )
    specs = []
    for name in steps:
        p = dict(params.get(str(name)) or {})
        plugin = p.pop("plugin", None)
        specs.append(StepSpec(str(name), p, str(plugin) if plugin else None))
    return specs


def tokenizer_loader(path: str | Path) -> Callable[[], Any]:
    from santa.data.tokenizer import load_tokenizer

    return functools.partial(load_tokenizer, str(path))


def build_config(
    *,
    pipeline: DictConfig | dict[str, Any],
    engine: DictConfig | dict[str, Any],
    input: Any,
    output: str | Path,
    strict: bool = False,
    tokenizer: Callable[[], Any] | None = None,
    tokenizer_id: str | None = None,
    benchmark_data: str | Path | None = None,
    keep_work: bool = False,
    progress: bool = True,
    cache_dir: Path | None = None,
    seed: int = 0,
) -> PipelineConfig:
    pipeline, engine = _plain(pipeline), _plain(engine)
    dirs = benchmark_dirs(benchmark_data)
    name = engine.get("name", "local")
    return PipelineConfig(
        input=_plain(input),
        output=output,
        steps=step_specs(pipeline),
        engine=name,
        workers=engine.get("workers"),
        batch_size=int(engine.get("batch_size", 256)),
        max_file_bytes=int(pipeline.get("max_file_bytes", 1_000_000)),
        strict=bool(strict),
        ray_address=engine.get("address"),
        ray_num_cpus=engine.get("num_cpus"),
        context=StepContext(
            tokenizer=tokenizer,
            data_dirs=dirs,
            cache_dir=cache_dir,
            seed=seed,
            workers=int(engine.get("workers") or os.cpu_count() or 1),
        ),
        key_extra={"tokenizer": tokenizer_id, "benchmark_data": assets.identity(dirs)},
        keep_work=keep_work,
        progress=progress,
    )
