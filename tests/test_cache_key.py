"""The cache key of the data stages and the pipeline: one function, and stable, since the keys
name directories already on users' disks (a changed hash would silently rebuild every cache)."""

from __future__ import annotations

from pathlib import Path

from santa.cache_key import config_key


def test_config_key_is_stable_and_order_free() -> None:
    config = {"corpus": "abc", "pipeline": {"steps": ["pii", "stars"], "p": Path("/x")}, "n": 3}
    # Computed by the two functions this one replaced (santa/stages.py, santa/pipeline/engine.py).
    assert config_key(config) == "9b89dedd0a11ad1f"
    assert config_key(dict(reversed(list(config.items())))) == "9b89dedd0a11ad1f"
    assert config_key({**config, "n": 4}) != "9b89dedd0a11ad1f"


def test_stages_and_pipeline_share_it() -> None:
    from santa import stages
    from santa.pipeline import engine

    assert stages.config_key is engine.config_key is config_key
