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
    with pytest.raises(
        registry.UnknownPluginError,
        match=r"no plugin named 'sliding' in group 'santa.attention'; valid names: gqa, mha, mqa",
    ):
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


# ------------------------------------------------------------------ one way to build a plugin
def test_every_entry_point_target_in_pyproject_imports() -> None:
    """Each `module:attr` the project registers resolves, and the installed metadata says the
    same: a stale one (after a rename, before `pip install -e .`) names modules that are gone."""
    from importlib import import_module
    from pathlib import Path

    import tomllib

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    declared = meta["project"]["entry-points"]
    assert set(declared) == set(registry.GROUPS)
    for group, targets in declared.items():
        for name, target in targets.items():
            module, _, attr = target.partition(":")
            assert callable(getattr(import_module(module), attr)), (group, name, target)
    installed = {(i.group, i.name): i.target for i in registry.describe() if i.distribution == "santa"}
    want = {(g, n): t for g, targets in declared.items() for n, t in targets.items()}
    assert installed == want, "the installed entry points are stale: run `pip install -e .` in the checkout"


@pytest.mark.parametrize(
    "group, name, params, context, message",
    [
        (
            "santa.filters",
            "basic",
            {"max_line_lenght": 5},
            {},
            r"filter 'basic' has no parameter\(s\) max_line_lenght \(set in pipeline.params.basic\); "
            r"it takes: max_line_length, max_mean_line_length, min_alnum_fraction",
        ),
        ("santa.filters", "exact_dedup", {"x": 1}, {}, r"filter 'exact_dedup' has no parameter\(s\) x .*it takes none"),
        (
            "santa.objectives",
            "fim",
            {"fim_rat": 0.5},
            {"tokenizer": None},
            r"objective 'fim' has no parameter\(s\) fim_rat \(set in objective.params\); it takes: fim_rate, fim_spm_rate",
        ),
        # AR swallows **unused keywords without passing them on: it declares none.
        (
            "santa.objectives",
            "ar",
            {"fim_rate": 0.5},
            {"tokenizer": None},
            r"objective 'ar' .*fim_rate .*it takes none",
        ),
        # MultiplE's **params go on to Benchmark.__init__, which takes none: only `version` is valid.
        (
            "santa.benchmarks",
            "multiple_humaneval_js",
            {"versoin": "8b88bd5"},
            {"data_dir": None},
            r"benchmark 'multiple_humaneval_js' has no parameter\(s\) versoin \(set in benchmark.params\); it takes: version$",
        ),
        (
            "santa.benchmarks",
            "fim_py",
            {"version": "8b88bd5"},
            {"data_dir": None},
            r"benchmark 'fim_py' .*it takes none",
        ),
    ],
)
def test_build_refuses_undeclared_parameters_naming_plugin_key_and_valid_ones(
    group: str, name: str, params: dict, context: dict, message: str
) -> None:
    with pytest.raises(registry.PluginParamsError, match=message):
        registry.build(group, name, params, **context)


def test_build_passes_context_and_params_as_each_group_declares() -> None:
    from santa.eval.tasks import MultiplEHumanEvalJs
    from santa.filters.base import RecordStep
    from santa.model.attention import GroupedQueryAttention
    from santa.model.config import GPTConfig

    step = registry.build("santa.filters", "basic", {"max_line_length": 5})
    assert isinstance(step, RecordStep) and step.params()["max_line_length"] == 5
    bench = registry.build("santa.benchmarks", "multiple_humaneval_js", {"version": "11b407b"}, data_dir=None)
    assert isinstance(bench, MultiplEHumanEvalJs) and bench.version == "11b407b"
    # Attention: the parameters travel in the config (GPTConfig.attention_params), the
    # constructor takes the config alone.
    config = GPTConfig(vocab_size=64, n_embd=32, n_layer=1, n_head=4, attention="gqa", n_query_groups=2)
    layer = registry.build("santa.attention", "gqa", config.attention_params, config=config)
    assert isinstance(layer, GroupedQueryAttention) and layer.n_kv_head == 2
    with pytest.raises(TypeError, match=r"santa.objectives plugins are built with context \('tokenizer',\)"):
        registry.build("santa.objectives", "ar", {})


def test_declared_parameters_come_from_the_signature_or_a_declared_tuple() -> None:
    class Span:
        def __init__(self, tokenizer, n: int, rate: float = 0.5) -> None: ...

    class Open:
        def __init__(self, tokenizer=None, **anything) -> None: ...

    class Declared(Open):
        plugin_params = ("depth",)

    def factory(tokenizer=None, **kw):  # noqa: ANN001, ANN003, ANN202
        return kw

    context = ("tokenizer",)
    assert registry.declared_params(Span, context=context) == (("n", "rate"), ("n",))
    assert registry.declared_params(Open, context=context) == ((), ())  # **anything reaches object
    assert registry.declared_params(Declared, context=context) == (("depth",), ())
    assert registry.declared_params(factory, context=context) == (None, ())  # a factory's **kw: anything
    with pytest.raises(
        registry.PluginParamsError, match=r"objective 'span' needs parameter\(s\) n \(set in objective.params\)"
    ):
        registry.check_params("santa.objectives", "span", Span, {"rate": 0.1})
    registry.check_params("santa.objectives", "factory", factory, {"whatever": 1})


def test_a_misspelt_attention_parameter_names_the_plugin() -> None:
    from santa.model.config import GPTConfig
    from santa.model.gpt import GPT

    with pytest.raises(
        registry.PluginParamsError,
        match=r"attention 'mqa' has no parameter\(s\) window \(set in model.attention_params\); it takes none",
    ):
        GPT(GPTConfig(vocab_size=64, n_embd=32, n_layer=1, n_head=4, attention="mqa", attention_params={"window": 4}))


def test_an_attention_layer_without_c_proj_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPT scales the initialisation of each layer's `c_proj` by depth and sizes the KV cache
    with `kv_heads(config)`: a plugin without them fails at build time, saying so."""
    import torch
    from torch import nn

    from santa.model.config import GPTConfig
    from santa.model.gpt import GPT

    class Bare(nn.Module):
        def __init__(self, config: GPTConfig) -> None:
            super().__init__()
            self.out = nn.Linear(config.n_embd, config.n_embd)

        def forward(self, x: torch.Tensor, mask=None, cache=None) -> torch.Tensor:  # noqa: ANN001
            return self.out(x)

    real_get = registry.get
    monkeypatch.setattr(registry, "get", lambda g, n: Bare if (g, n) == ("santa.attention", "bare") else real_get(g, n))
    with pytest.raises(
        ValueError, match=r"attention 'bare' .*Bare\) has no `c_proj` nn.Linear .* and has no `kv_heads\(config\)`"
    ):
        GPT(GPTConfig(vocab_size=64, n_embd=32, n_layer=1, n_head=4, attention="bare"))


def test_every_groups_parameters_take_new_keys_without_a_plus() -> None:
    """A third party's parameters are set like a built-in's: no `+` (santa/config_store.py).
    Elsewhere Hydra's struct mode still refuses a key no config has."""
    from conftest import compose_conf, compose_train
    from hydra.errors import ConfigCompositionException

    cfg = compose_train(
        [
            "pipeline.params.license.allowed=[mit]",
            "model.attention_params.window=16",
            "objective.params.fim_rate=0.9",
            "objective.params.extra=1",
            "pipeline.params.basic.max_line_length=5",
        ]
    )
    assert cfg.pipeline.params.license.allowed == ["mit"] and cfg.pipeline.params.basic.max_line_length == 5
    assert dict(cfg.model.attention_params) == {"window": 16}
    assert dict(cfg.objective.params) == {"fim_rate": 0.9, "fim_spm_rate": 0.5, "mask_pad": False, "extra": 1}
    # The experiments' presets and the `+`/`++` forms keep working.
    cfg = compose_train(
        ["experiment=final", "pipeline.params.license.allowed=[mit]", "++model.attention_params.window=3"]
    )
    assert cfg.pipeline.name == "final" and cfg.pipeline.params.near_dedup_alt.plugin == "near_dedup"
    assert cfg.pipeline.params.license.allowed == ["mit"] and cfg.model.attention_params.window == 3
    prep = compose_conf("prepare", ["input=a", "output=b", "pipeline.params.generated.header_lines=5"])
    assert prep.pipeline.params.generated.header_lines == 5
    ev = compose_conf(
        "evaluate", ["run_dir=x", "benchmark=multiple_humaneval_js", "benchmark.params.problem_file=f.json"]
    )
    assert dict(ev.benchmark.params) == {"version": "8b88bd5", "problem_file": "f.json"}
    for name, override in (("train", "pipeline.nope=1"), ("train", "model.nope=1"), ("evaluate", "benchmark.nope=1")):
        with pytest.raises(ConfigCompositionException, match="Could not override"):
            compose_conf(name, [override, "run_dir=x"] if name == "evaluate" else [override])


def test_a_misspelt_step_name_in_pipeline_params_is_refused() -> None:
    """With pipeline.params open, `pipeline.params.basci.x=1` would be silently ignored: a key
    must name a step, an installed filter or a step of its own (`plugin`)."""
    from santa.pipeline.config import step_specs
    from santa.pipeline.spec import PipelineError

    ok = step_specs(
        {
            "steps": ["basic", "strict"],
            "params": {"stars": {"min_stars": 1}, "strict": {"plugin": "basic"}, "again": {"plugin": "basic"}},
        }
    )
    assert [(s.name, s.plugin) for s in ok] == [("basic", None), ("strict", "basic")]
    with pytest.raises(PipelineError, match=r"pipeline.params.basci: no step 'basci' in pipeline.steps \(basic\)"):
        step_specs({"steps": ["basic"], "params": {"basci": {"max_line_length": 5}}})


def test_the_pipeline_the_harness_and_the_datamodule_build_through_the_registry(tmp_path) -> None:  # noqa: ANN001
    from santa.data.datamodule import SantaDataModule
    from santa.eval.harness import build_benchmark
    from santa.eval.settings import EvaluationError
    from santa.pipeline.spec import PipelineError, StepSpec, build_step

    with pytest.raises(
        PipelineError,
        match=r"step 'strict': bad parameters: filter 'basic' has no parameter\(s\) max_lines \(set in pipeline.params.strict\)",
    ):
        build_step(StepSpec("strict", {"max_lines": 3}, "basic"))
    with pytest.raises(
        EvaluationError,
        match=r"benchmark 'humaneval_py' has no parameter\(s\) version \(set in benchmark.params\); it takes: problem_file",
    ):
        build_benchmark("humaneval_py", {"version": "8b88bd5"})
    with pytest.raises(registry.PluginParamsError, match=r"objective 'fim' has no parameter\(s\) fim_rat"):
        SantaDataModule(
            None,
            objective="fim",
            objective_params={"fim_rat": 0.5},
            seq_len=8,
            micro_batch_size=1,  # type: ignore[arg-type]
            global_batch_size=1,
            val_windows=1,
            num_workers=0,
            seed=0,
        )
