"""HF GPTBigCode conversion: export -> transformers loads it offline with the same logits; import
back; refusals name what is unsupported. Tiny models, seconds each."""

from __future__ import annotations

import json

import pytest
import torch

from santa.model import GPT, GPTConfig, generate

transformers = pytest.importorskip("transformers")
transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

from santa.model.generation import GenerationModel  # noqa: E402
from santa.model.hf import (  # noqa: E402
    HFGenerationModel,
    UnsupportedConversionError,
    export_hf,
    from_hf_config,
    import_hf,
    to_hf_config,
)

VOCAB = 384


def build(attention: str, n_query_groups: int | None = None, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    cfg = GPTConfig(
        vocab_size=VOCAB,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=64,
        attention=attention,
        n_query_groups=n_query_groups,
    )
    model = GPT(cfg).eval()
    # Non-zero biases and LayerNorm affine parameters, so a mis-mapped bias cannot hide.
    with torch.no_grad():
        for _name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def load_hf(path):
    return transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()


def small_tokenizer():
    """A byte-level BPE with SantaCoder's special tokens, trained on a few lines."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<fim-prefix>", "<fim-middle>", "<fim-suffix>", "<fim-pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["def f(x):\n    return x + 1\n"] * 20, trainer=trainer)
    return tok


@pytest.mark.parametrize("attention", ["mqa", "mha"])
def test_export_loads_in_transformers_with_equal_logits(tmp_path, attention):
    model = build(attention)
    out = export_hf(model, tmp_path / "hf", bos_token_id=0, eos_token_id=0)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["multi_query"] is (attention == "mqa")
    assert cfg["activation_function"] == "gelu_pytorch_tanh"
    assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (0, 0)
    assert "auto_map" not in cfg  # no remote code

    hf = load_hf(out)
    assert type(hf).__name__ == "GPTBigCodeForCausalLM"
    ids = torch.randint(0, VOCAB, (2, 24))
    with torch.no_grad():
        ours, _ = model(ids)
        theirs = hf(ids).logits
    assert (ours - theirs).abs().max().item() < 1e-4
    # Greedy continuations agree too (their cache against ours).
    ref = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(generate(model, ids, 8), ref)


@pytest.mark.parametrize("attention", ["mqa", "mha"])
def test_import_round_trip_identical_logits(tmp_path, attention):
    model = build(attention)
    out = export_hf(model, tmp_path / "hf", bos_token_id=1, eos_token_id=2)
    back = import_hf(out).eval()
    assert back.config == model.config
    assert back.lm_head.weight is back.transformer.wte.weight
    ids = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        assert torch.equal(back(ids)[0], model(ids)[0])
    half = import_hf(out, dtype=torch.bfloat16)
    assert half.transformer.wte.weight.dtype == torch.bfloat16


def test_import_from_transformers_saved_model(tmp_path):
    """A checkpoint written by transformers itself (as a user's SantaCoder download would be)."""
    hf_cfg = to_hf_config(build("mha").config, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(1)
    hf = transformers.GPTBigCodeForCausalLM(hf_cfg).eval()
    hf.save_pretrained(tmp_path / "saved", max_shard_size="100KB")  # sharded, with an index
    assert (tmp_path / "saved" / "model.safetensors.index.json").exists()
    ours = import_hf(tmp_path / "saved").eval()
    ids = torch.randint(0, VOCAB, (1, 20))
    with torch.no_grad():
        assert (ours(ids)[0] - hf(ids).logits).abs().max().item() < 1e-4


def test_export_with_tokenizer_takes_endoftext_ids(tmp_path):
    tok = small_tokenizer()
    eot = tok.token_to_id("<|endoftext|>")
    model = build("mqa")
    out = export_hf(model, tmp_path / "hf", tokenizer=tok)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["bos_token_id"] == cfg["eos_token_id"] == eot
    hf_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert hf_tok.convert_tokens_to_ids("<|endoftext|>") == eot
    assert hf_tok.decode(hf_tok("def f(x):")["input_ids"]) == "def f(x):"


def test_export_replaces_atomically(tmp_path):
    model = build("mqa")
    target = tmp_path / "hf"
    export_hf(model, target, bos_token_id=0, eos_token_id=0)
    (target / "stale.txt").write_text("old")
    export_hf(model, target, bos_token_id=0, eos_token_id=0)
    assert not (target / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]  # no temporary directories left


def test_gqa_export_refused_with_advice(tmp_path):
    model = build("gqa", 2)
    with pytest.raises(UnsupportedConversionError, match="no grouped-query variant.*mqa' or 'mha'.*santa's checkpoint"):
        export_hf(model, tmp_path / "hf", bos_token_id=0, eos_token_id=0)
    assert not (tmp_path / "hf").exists()


def test_export_needs_token_ids(tmp_path):
    with pytest.raises(ValueError, match="bos_token_id and eos_token_id"):
        export_hf(build("mqa"), tmp_path / "hf")


@pytest.mark.parametrize(
    "key, value",
    [
        ("activation_function", "relu"),
        ("scale_attn_weights", False),
        ("add_cross_attention", True),
        ("tie_word_embeddings", False),
        ("model_type", "gpt2"),
    ],
)
def test_import_refuses_unsupported_configs_naming_the_key(key, value):
    d = to_hf_config(build("mqa").config, bos_token_id=0, eos_token_id=0).to_dict()
    from_hf_config(d)  # the unmodified config is fine
    d[key] = value
    with pytest.raises(UnsupportedConversionError, match=key):
        from_hf_config(d)


def test_hf_generation_model_matches_santa(tmp_path):
    model = build("mqa")
    hf = HFGenerationModel(load_hf(export_hf(model, tmp_path / "hf", bos_token_id=0, eos_token_id=0)))
    assert isinstance(hf, GenerationModel) and hf.max_length == 64
    ids = torch.randint(1, VOCAB, (2, 6))
    mask = torch.ones_like(ids)
    ids[1, :2], mask[1, :2] = 0, 0  # left padding
    ours = generate(model, ids, 6, attention_mask=mask, eos_token_id=10_000 % VOCAB, pad_token_id=0)
    theirs = hf.generate(ids, 6, attention_mask=mask, eos_token_id=10_000 % VOCAB, pad_token_id=0)
    assert torch.equal(ours, theirs)
