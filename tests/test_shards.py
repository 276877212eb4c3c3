from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from santa.data.shards import PackedDataset, ShardError, TokenShard, shard_matches, tokenize_corpus
from santa.data.tokenizer import EOT, special_ids, train_tokenizer

DOCS = [
    "def add(a, b):\n    return a + b\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "import os\nprint(os.getcwd())\n",
    "public class A { int f(int x) { return x * 2; } }\n",
    "function sq(x) { return x * x; }\nconsole.log(sq(3));\n",
    "x = 1\n",
]


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return train_tokenizer(DOCS * 20, 300)


@pytest.fixture(scope="module")
def other_tok() -> PreTrainedTokenizerFast:
    return train_tokenizer(DOCS * 20, 280)


def make_shard(tmp_path, tok, docs=DOCS, name="s"):
    tokenize_corpus([{"content": d} for d in docs], tok, tmp_path / name, batch_size=4)
    return TokenShard(tmp_path / name)


def test_round_trip_and_layout(tmp_path, tok):
    info = tokenize_corpus(
        ({"content": d, "lang": "Python"} for d in DOCS), tok, tmp_path / "out" / "train", batch_size=4
    )
    eot = special_ids(tok).eot
    shard = TokenShard(tmp_path / "out" / "train")
    assert (info.n_docs, info.n_tokens, info.eot_id, info.vocab_size) == (len(DOCS), shard.n_tokens, eot, len(tok))
    assert shard.tokens.dtype == np.uint16
    assert (tmp_path / "out" / "train.bin").stat().st_size == 2 * info.n_tokens
    offsets = np.load(tmp_path / "out" / "train.idx.npy")
    assert offsets.dtype == np.int64 and offsets.shape == (len(DOCS) + 1,)
    assert offsets[0] == 0 and offsets[-1] == info.n_tokens
    for i, doc in enumerate(DOCS):
        assert tok.decode(shard.document(i).tolist()) == doc
        assert shard.tokens[offsets[i + 1] - 1] == eot  # every document ends with <|endoftext|>
        assert eot not in shard.document(i)
        assert shard.document(i).tolist() == tok(doc, add_special_tokens=False)["input_ids"]
    assert int((shard.tokens == eot).sum()) == len(DOCS)
    assert tok.decode(shard.document(-1).tolist()) == DOCS[-1]
    with pytest.raises(IndexError):
        shard.document(len(DOCS))
    meta = json.loads((tmp_path / "out" / "train.json").read_text())
    assert meta["n_docs"] == len(DOCS) and meta["dtype"] == "uint16" and meta["tokenizer_fingerprint"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train.bin", "train.idx.npy", "train.json"]


def test_plain_strings_and_a_literal_separator_in_the_text(tmp_path, tok):
    docs = ["a = '<|endoftext|>'\n", "b = 2\n"]
    tokenize_corpus(docs, tok, tmp_path / "s")
    shard = TokenShard(tmp_path / "s")
    # Text that spells the separator is text: it must not split a document in two.
    assert int((shard.tokens == special_ids(tok).eot).sum()) == 2
    assert [tok.decode(shard.document(i).tolist()) for i in range(2)] == docs
    assert tok.backend_tokenizer.encode_special_tokens is False  # the caller's tokenizer is left as it was


def test_rewrite_replaces_the_shard(tmp_path, tok):
    make_shard(tmp_path, tok)
    make_shard(tmp_path, tok, docs=DOCS[:2])
    assert TokenShard(tmp_path / "s").n_docs == 2


def test_vocab_too_large_for_uint16(tmp_path):
    vocab = {f"w{i}": i for i in range(70_000)}
    vocab[EOT] = 70_000
    big = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token=EOT)))
    with pytest.raises(ValueError, match="uint16"):
        tokenize_corpus(["w1 w2"], big, tmp_path / "s")
    assert not list(tmp_path.iterdir())


def test_tokenizer_without_eot(tmp_path):
    wl = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match="endoftext"):
        tokenize_corpus(["a"], PreTrainedTokenizerFast(tokenizer_object=wl), tmp_path / "s")


def test_empty_input_is_an_error_and_writes_nothing(tmp_path, tok):
    with pytest.raises(ValueError, match="no documents"):
        tokenize_corpus(iter([]), tok, tmp_path / "s")
    assert not list(tmp_path.iterdir())


def test_bad_record_is_an_error(tmp_path, tok):
    with pytest.raises(ValueError, match="a.py: record has no string 'content'"):
        tokenize_corpus([{"content": "x"}, {"max_stars_repo_path": "a.py"}], tok, tmp_path / "s")
    assert not list(tmp_path.iterdir())


def test_missing_and_corrupt_shards(tmp_path, tok):
    with pytest.raises(FileNotFoundError, match="no token shard"):
        TokenShard(tmp_path / "none")

    make_shard(tmp_path, tok)
    bin_path = tmp_path / "s.bin"
    data = bin_path.read_bytes()
    bin_path.write_bytes(data[:-2])  # truncated
    with pytest.raises(ShardError, match=r"s\.bin has .* delete .*rerun"):
        TokenShard(tmp_path / "s")

    make_shard(tmp_path, tok)
    (tmp_path / "s.json").write_text("{broken")
    with pytest.raises(ShardError, match=r"s\.json is not a valid"):
        TokenShard(tmp_path / "s")

    make_shard(tmp_path, tok)
    (tmp_path / "s.json").unlink()  # as after an interrupted rewrite
    with pytest.raises(ShardError, match="missing"):
        TokenShard(tmp_path / "s")

    make_shard(tmp_path, tok)
    np.save(tmp_path / "s.idx.npy", np.array([0, 1], dtype=np.int64))
    with pytest.raises(ShardError, match=r"s\.idx\.npy has"):
        TokenShard(tmp_path / "s")

    make_shard(tmp_path, tok)
    (tmp_path / "s.idx.npy").write_bytes(b"garbage")
    with pytest.raises(ShardError, match=r"s\.idx\.npy cannot be read"):
        TokenShard(tmp_path / "s")


def test_shard_matches_its_tokenizer(tmp_path, tok, other_tok):
    make_shard(tmp_path, tok)
    assert shard_matches(tmp_path / "s", tok)
    assert not shard_matches(tmp_path / "s", other_tok)
    assert not shard_matches(tmp_path / "missing", tok)
    assert shard_matches(tmp_path / "s", tok.backend_tokenizer)  # a bare tokenizers.Tokenizer too
    # Any of the three file names works as the prefix.
    assert TokenShard(tmp_path / "s.bin").n_docs == len(DOCS)


def test_one_way_to_the_rust_tokenizer(tmp_path, tok):
    from santa.data.tokenizer import fingerprint, rust_tokenizer

    bare = tok.backend_tokenizer
    assert rust_tokenizer(tok) is bare and rust_tokenizer(bare) is bare
    assert fingerprint(bare) == fingerprint(tok)
    # A shard made with the bare tokenizer matches the fast one wrapping it, and vice versa.
    tokenize_corpus(DOCS, bare, tmp_path / "bare", batch_size=4)
    assert shard_matches(tmp_path / "bare", tok)
    with pytest.raises(TypeError, match="fast \\(Rust-backed\\) tokenizer, got object"):
        rust_tokenizer(object())
    with pytest.raises(TypeError, match="fast \\(Rust-backed\\) tokenizer"):
        tokenize_corpus(DOCS, object(), tmp_path / "nope")


def test_shard_pickles_as_its_prefix(tmp_path, tok):
    shard = make_shard(tmp_path, tok, docs=DOCS * 50)
    blob = pickle.dumps(shard)
    assert len(blob) < 500  # a memmap would pickle the whole token array
    again = pickle.loads(blob)
    assert np.array_equal(again.tokens, shard.tokens)


def test_packed_windows_overlap_by_one_and_cover_all_tokens(tmp_path, tok):
    a = make_shard(tmp_path, tok, name="a")
    b = make_shard(tmp_path, tok, docs=DOCS[::-1], name="b")
    everything = np.concatenate([a.tokens, b.tokens]).astype(np.int64)
    for seq_len in (1, 7, 16, len(everything) - 1):
        ds = PackedDataset([a, b], seq_len)
        assert len(ds) == (len(everything) - 1) // seq_len
        windows = [ds[i] for i in range(len(ds))]
        for i, w in enumerate(windows):
            assert w.dtype == np.int64 and w.shape == (seq_len + 1,)
            assert np.array_equal(w, everything[i * seq_len : i * seq_len + seq_len + 1])
            if i:
                assert w[0] == windows[i - 1][-1]
        # Every token after the first is a target exactly once, up to the dropped tail.
        targets = np.concatenate([w[1:] for w in windows])
        assert np.array_equal(targets, everything[1 : len(ds) * seq_len + 1])
        assert len(everything) - 1 - len(targets) < seq_len
    ds = PackedDataset(a, 5)
    assert np.array_equal(ds[-1], ds[len(ds) - 1]) and ds.eot_id == special_ids(tok).eot
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_packed_dataset_errors(tmp_path, tok, other_tok):
    shard = make_shard(tmp_path, tok, docs=["x = 1\n"])
    n = shard.n_tokens
    PackedDataset(shard, n - 1)  # exactly one window fits
    with pytest.raises(ValueError, match=rf"has {n} tokens .* seq_len={n} needs {n + 1}"):
        PackedDataset(shard, n)
    with pytest.raises(ValueError, match="seq_len"):
        PackedDataset(shard, 0)
    with pytest.raises(ValueError, match="at least one"):
        PackedDataset([], 4)
    other = make_shard(tmp_path, other_tok, name="o")
    with pytest.raises(ValueError, match="different tokenizers"):
        PackedDataset([shard, other], 1)
