"""Evaluate a model or a samples file on a benchmark: `python evaluate.py [hydra overrides]`
(see conf/evaluate.yaml and docs/evaluation.md)."""

import hydra
from omegaconf import DictConfig

from santa.entry import run_app, run_guarded


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from santa.eval.harness import evaluate

    run_guarded(evaluate, cfg)


if __name__ == "__main__":
    run_app(main)
