"""The Hydra applications behind ``santa train`` / ``santa evaluate`` (and ``python -m santa ...``):
the same as the checkout's train.py / evaluate.py, with the configs read from the installed
package (``pkg://santa.conf``, which is the repository's conf/), so they work from any directory."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from santa.entry import run_guarded

CONFIGS = "pkg://santa.conf"


@hydra.main(config_path=CONFIGS, config_name="train", version_base="1.3")
def train_main(cfg: DictConfig) -> None:
    from santa.training import train

    run_guarded(train, cfg)


@hydra.main(config_path=CONFIGS, config_name="evaluate", version_base="1.3")
def evaluate_main(cfg: DictConfig) -> None:
    from santa.eval.harness import evaluate

    run_guarded(evaluate, cfg)


APPS = {"train": train_main, "evaluate": evaluate_main}
