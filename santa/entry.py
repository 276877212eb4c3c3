"""Shared by the Hydra entry points: user errors print one clear message and exit 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console

from santa.errors import SantaError


def run_guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (SantaError, FileNotFoundError) as exc:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/bold red] {exc}")
        sys.exit(2)


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("santa.wandb_offline"):
        # Offline unless the user configured W&B otherwise (WANDB_MODE=online, or an API key set
        # without WANDB_MODE): no account and no network must be needed.
        def wandb_offline() -> bool:
            mode = os.environ.get("WANDB_MODE", "").lower()
            if mode in ("online", "run"):
                return False
            if mode in ("offline", "dryrun", "disabled"):
                return True
            return not os.environ.get("WANDB_API_KEY")

        OmegaConf.register_new_resolver("santa.wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("santa.mul"):
        # ${santa.mul:${scale.steps},${scale.steps_factor}}: `final` trains twice as long.
        OmegaConf.register_new_resolver("santa.mul", lambda a, b: int(a) * int(b))


_register_resolvers()
