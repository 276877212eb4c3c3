"""`santa prepare input=<file, dir or glob> output=<dir> pipeline=<preset> engine=local|ray
[hydra overrides]`: the data pipeline alone, configured by conf/prepare.yaml."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from rich.console import Console

from santa.errors import SantaError

if TYPE_CHECKING:  # imported lazily at run time: `santa prepare --help` stays fast
    from omegaconf import DictConfig


# Before numpy loads (santa.pipeline imports it lazily): its OpenBLAS would start a pool of
# threads at import that no step uses (the pipeline has no matrix products), and a process with
# threads must spawn its workers rather than fork them (santa/pipeline/engines.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


class PrepareConfigError(SantaError, ValueError):
    """Overrides that do not make a pipeline configuration."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="Hydra overrides: input=<file, dir or glob> output=<dir> pipeline=base|stars|comments|fertility|"
        "dedup_alt|final engine=local|ray, pipeline.steps=[...], pipeline.params.<step>.<param>=..., strict=true",
    )
    parser.add_argument("--cfg", action="store_true", help="print the composed configuration and exit")


def compose(overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    # `tokenizer=<dir>` would select the training configs' tokenizer group (conf/tokenizer/): here
    # it names a tokenizer file, so it is the tokenizer_path key.
    overrides = [f"tokenizer_path={o.split('=', 1)[1]}" if o.startswith("tokenizer=") else o for o in overrides]
    try:
        # The installed package's configs (santa/conf is the repository's conf/).
        with initialize_config_module(config_module="santa.conf", version_base="1.3"):
            return hydra_compose("prepare", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise PrepareConfigError(f"bad override(s) {' '.join(overrides)}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    from santa.pipeline.config import build_config, tokenizer_loader
    from santa.pipeline.engine import run_pipeline

    cfg = compose(list(args.overrides))
    console = Console(stderr=True, soft_wrap=True)
    if args.cfg:
        print(OmegaConf.to_yaml(cfg))
        return 0
    try:
        source, output = cfg.input, cfg.output
    except MissingMandatoryValue as exc:
        raise PrepareConfigError(
            "santa prepare needs input=<file, dir or glob> and output=<dir>, e.g. "
            "santa prepare input=data/*.parquet output=clean pipeline=base"
        ) from exc
    tokenizer = tokenizer_id = None
    if cfg.tokenizer_path:
        from santa.data.tokenizer import fingerprint, load_tokenizer

        tokenizer_id = fingerprint(load_tokenizer(cfg.tokenizer_path))  # validates it, naming the file
        tokenizer = tokenizer_loader(cfg.tokenizer_path)
    pcfg = build_config(
        pipeline=cfg.pipeline,
        engine=cfg.engine,
        input=source,
        output=output,
        strict=cfg.strict,
        tokenizer=tokenizer,
        tokenizer_id=tokenizer_id,
        benchmark_data=cfg.benchmark_data,
        keep_work=cfg.keep_work,
        progress=cfg.progress,
    )
    console.print(
        f"[bold]santa prepare[/bold] pipeline={cfg.pipeline.name} steps={[s.name for s in pcfg.steps]} "
        f"engine={pcfg.engine}",
        highlight=False,
    )
    result = run_pipeline(pcfg, console)
    console.print(f"[bold]outputs[/bold] {result.output} (report.json, data/, rejects/)", highlight=False)
    check_produced(result.report, source, console)
    return 0


def check_produced(report: dict[str, Any], source: object, console: Console) -> None:
    """Success with nothing produced is not silent: no record read is a user error (exit 2),
    every record dropped a warning that names the step that dropped the most."""
    totals = report["totals"]
    if totals["read"]["files"] == 0:
        from santa.pipeline.spec import PipelineError

        errors = int((report.get("input_errors") or {}).get("count", 0))
        raise PipelineError(
            f"read no records from input={source}"
            + (f" ({errors} input error(s), see report.json)" if errors else " (empty input)")
            + "; the output is empty"
        )
    if totals["kept"]["files"] == 0:
        steps = [s for s in report["steps"] if s.get("read") and s.get("kept")]
        worst = max(steps, key=lambda s: s["read"]["files"] - s["kept"]["files"], default=None)
        where = f"; {worst['name']} dropped {worst['read']['files'] - worst['kept']['files']}" if worst else ""
        console.print(
            f"[bold yellow]warning:[/bold yellow] every one of the {totals['read']['files']} files was dropped"
            f"{where} (see rejects/ and report.json); data/ is empty",
            highlight=False,
        )
