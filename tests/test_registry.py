"""The plugin registry: built-ins come through entry points like anyone's, `santa plugins` lists
them with their distribution, and an unknown name is an error that lists the valid ones."""

from __future__ import annotations

import subprocess
import sys

import pytest

from santa import registry


def test_builtins_register_through_entry_points() -> None:
    assert {"mha", "mqa", "gqa"} <= set(registry.names("santa.attention"))
    assert {"ar", "fim"} <= set(registry.names("santa.objectives"))
    infos = {(i.group, i.name): i for i in registry.describe()}
    assert infos[("santa.attention", "mqa")].distribution == "santa"
    assert infos[("santa.objectives", "fim")].target == "santa.objectives.fim:FillInTheMiddle"
    from santa.model.attention import MultiQueryAttention

    assert registry.get("santa.attention", "mqa") is MultiQueryAttention


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(registry.UnknownPluginError, match=r"no plugin named 'sliding' in group 'santa.attention'; valid names: gqa, mha, mqa"):
        registry.get("santa.attention", "sliding")
    with pytest.raises(registry.UnknownPluginError, match="unknown plugin group"):
        registry.names("santa.nothing")


def test_santa_plugins_command_lists_every_group() -> None:
    out = subprocess.run([sys.executable, "-m", "santa.cli", "plugins"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for group in registry.GROUPS:
        assert group in out.stdout
    for name in ("mqa", "fim", "near_dedup", "humaneval_py"):
        assert name in out.stdout
    assert "santa 0.1.0" in out.stdout


def test_unknown_attention_in_a_model_is_a_clear_error() -> None:
    from santa.model.config import GPTConfig
    from santa.model.gpt import GPT

    with pytest.raises(registry.UnknownPluginError, match="valid names: gqa, mha, mqa"):
        GPT(GPTConfig(vocab_size=256, n_positions=16, n_embd=32, n_layer=1, n_head=4, attention="sliding"))
