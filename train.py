"""Train a santa model: `python train.py [hydra overrides]` (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from santa.entry import run_app, run_guarded


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from santa.training import train

    run_guarded(train, cfg)


if __name__ == "__main__":
    run_app(main)
