"""Adds this plugin's config groups (santa_swa/conf: model/tiny_swa.yaml) to Hydra's search path,
so `python train.py model=tiny_swa` finds them once the package is installed. Hydra imports every
module of the `hydra_plugins` namespace package (no __init__.py there) and calls each
SearchPathPlugin it finds, for @hydra.main and for the compose API alike."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class SantaSlidingWindowSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # Appended: the main project's conf/ comes first, so a user's own model/tiny_swa.yaml wins.
        search_path.append(provider="santa-sliding-window", path="pkg://santa_swa.conf")
