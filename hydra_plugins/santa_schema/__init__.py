"""santa's Hydra plugin module: Hydra imports every module of the ``hydra_plugins`` namespace
package (no ``__init__.py`` in ``hydra_plugins/``) before it composes a config, so registering
santa's ConfigStore nodes here makes them available to train.py, evaluate.py, ``santa prepare``
and the compose API alike (see santa/config_store.py)."""

from santa.config_store import register

register()
