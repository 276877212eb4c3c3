"""Adds this plugin's config groups (santa_generated/conf: pipeline/base_generated.yaml) to Hydra's
search path, so `python train.py pipeline=base_generated` and `santa prepare pipeline=base_generated`
find them once the package is installed. Hydra imports every module of the `hydra_plugins`
namespace package (no __init__.py there) and calls each SearchPathPlugin it finds, for
@hydra.main and for the compose API alike."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class SantaGeneratedSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # Appended: the main project's conf/ comes first, so a user's own file of the same name wins.
        search_path.append(provider="santa-generated-filter", path="pkg://santa_generated.conf")
