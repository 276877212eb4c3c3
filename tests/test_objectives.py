"""Objectives: the plugin contract, AR, and FIM as BigCode's Megatron fork does it."""

from __future__ import annotations

import pickle
import textwrap

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from santa import registry
from santa.data.fim_format import fim_format, infill_prompt, undo_fim, undo_fim_window
from santa.data.tokenizer import EOT, SpecialIds, TokenizerError, special_ids, train_tokenizer
from santa.objectives import IGNORE_INDEX, Objective, to_sample
from santa.objectives.ar import AutoRegressive
from santa.objectives.fim import FillInTheMiddle, apply_fim, permute_piece

DOCS = [
    "def add(a, b):\n    return a + b\n",
    textwrap.dedent(
        '''\
        class Stack:
            """A list with a narrower interface."""

            def __init__(self):
                self.items = []

            def push(self, item):
                self.items.append(item)

            def pop(self):
                return self.items.pop()
        '''
    ),
    textwrap.dedent(
        """\
        import os


        def walk(root, suffix=".py"):
            for dirpath, _, names in os.walk(root):
                for name in names:
                    if name.endswith(suffix):
                        yield os.path.join(dirpath, name)
        """
    ),
    "x = [i * i for i in range(10)]\nprint(sum(x), max(x))  # 285 81\n",
]


def _corpus() -> list[str]:
    # A few KB of real Python so the BPE learns merges that FIM cuts will break.
    import json
    import textwrap as tw

    texts = list(DOCS)
    for mod in (tw, json):
        with open(mod.__file__, encoding="utf-8") as f:
            texts.append(f.read()[:6000])
    return texts


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return train_tokenizer(_corpus(), vocab_size=600)


@pytest.fixture(scope="module")
def ids(tok: PreTrainedTokenizerFast) -> SpecialIds:
    return special_ids(tok)


def enc(tok: PreTrainedTokenizerFast, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def dec(tok: PreTrainedTokenizerFast, token_ids) -> str:
    return tok.backend_tokenizer.decode([int(t) for t in token_ids], skip_special_tokens=False)


def stream(tok: PreTrainedTokenizerFast, ids: SpecialIds, docs=DOCS, repeat: int = 3) -> np.ndarray:
    out: list[int] = []
    for _ in range(repeat):
        for d in docs:
            out += enc(tok, d) + [ids.eot]
    return np.array(out, dtype=np.int64)


def split_on(seq, sep: int) -> list[list[int]]:
    pieces: list[list[int]] = [[]]
    for t in seq:
        if int(t) == sep:
            pieces.append([])
        else:
            pieces[-1].append(int(t))
    return pieces


class ScriptedRng:
    """Plays back fixed draws and records the calls, to pin cut points and the draw order."""

    def __init__(self, draws):
        self.draws = list(draws)
        self.calls: list[tuple] = []

    def binomial(self, n, p):
        self.calls.append(("binomial", n, p))
        return self.draws.pop(0)

    def integers(self, low, high, size):
        self.calls.append(("integers", low, high, size))
        return np.array(self.draws.pop(0))


# --- the contract ---------------------------------------------------------------------------


def test_to_sample_shifts_and_masks():
    s = to_sample(np.array([5, 6, 7, 8]), loss_mask=np.array([True, True, False, True]))
    assert s["input_ids"].tolist() == [5, 6, 7]
    assert s["labels"].tolist() == [6, IGNORE_INDEX, 8]
    assert s["input_ids"].dtype == np.int64 and s["labels"].dtype == np.int64
    with pytest.raises(ValueError):
        to_sample(np.array([1]))


def test_builtins_are_registered_and_satisfy_the_protocol(tok):
    assert registry.get("santa.objectives", "ar") is AutoRegressive
    assert registry.get("santa.objectives", "fim") is FillInTheMiddle
    assert isinstance(AutoRegressive(tokenizer=tok), Objective)
    assert isinstance(FillInTheMiddle(tokenizer=tok), Objective)


def test_ar_is_the_shifted_window(tok, ids):
    window = stream(tok, ids)[:65]
    before = window.copy()
    s = AutoRegressive(tokenizer=tok, fim_rate=0.5)(window, np.random.default_rng(0))
    assert s["input_ids"].tolist() == window[:-1].tolist()
    assert s["labels"].tolist() == window[1:].tolist()
    assert s["input_ids"].shape == s["labels"].shape == (64,)
    assert np.array_equal(window, before)


# --- FIM layouts ----------------------------------------------------------------------------


@pytest.mark.parametrize("spm", [False, True])
def test_permute_piece_pins_layout_and_draw_order(tok, ids, spm):
    text = DOCS[0]  # "def add(a, b):\n    return a + b\n"
    lo, hi = 4, 14  # prefix "def ", middle "add(a, b):", suffix "\n    return a + b\n"
    prefix, middle, suffix = enc(tok, text[:lo]), enc(tok, text[lo:hi]), enc(tok, text[hi:])
    if spm:
        expected = [ids.fim_prefix, ids.fim_suffix, *suffix, ids.fim_middle, *prefix, *middle]
    else:
        expected = [ids.fim_prefix, *prefix, ids.fim_suffix, *suffix, ids.fim_middle, *middle]
    assert fim_format(prefix, middle, suffix, ids, spm=spm) == expected

    rng = ScriptedRng([1, [hi, lo], int(spm)])  # unsorted on purpose: the cuts get sorted
    out = permute_piece(np.array(enc(tok, text)), rng, tok, ids, fim_rate=0.3, fim_spm_rate=0.7)
    assert out.tolist() == expected
    assert rng.calls == [("binomial", 1, 0.3), ("integers", 0, len(text) + 1, 2), ("binomial", 1, 0.7)]


def test_no_fim_draw_consumes_one_binomial_only(tok, ids):
    piece = np.array(enc(tok, DOCS[0]))
    rng = ScriptedRng([0])
    assert permute_piece(piece, rng, tok, ids, 0.5, 0.5).tolist() == piece.tolist()
    assert rng.calls == [("binomial", 1, 0.5)]


def test_infill_prompt_is_the_training_layout_without_middle(tok, ids):
    p, s = "def add(a, b):\n    ", "\n"
    psm = infill_prompt(tok, p, s)
    spm = infill_prompt(tok, p, s, spm=True)
    assert psm == [ids.fim_prefix, *enc(tok, p), ids.fim_suffix, *enc(tok, s), ids.fim_middle]
    assert spm == [ids.fim_prefix, ids.fim_suffix, *enc(tok, s), ids.fim_middle, *enc(tok, p)]
    assert psm == fim_format(enc(tok, p), [], enc(tok, s), ids, spm=False)


# --- FIM over windows -----------------------------------------------------------------------


@pytest.mark.parametrize("start", [0, 7, 30])
def test_fim_round_trips_every_document_and_keeps_separators(tok, ids, start):
    data = stream(tok, ids)
    # Windows that start and end mid-document, a window starting on a separator, and
    # back-to-back separators (an empty document).
    window = data[start : start + 121]
    windows = [
        window,
        np.concatenate([[ids.eot], window]),
        np.concatenate([window[:20], [ids.eot, ids.eot], window[20:]]),
    ]
    for w in windows:
        originals = split_on(w, ids.eot)
        for seed in range(40):
            out = apply_fim(w, np.random.default_rng(seed), tok, fim_rate=1.0, fit=False)
            pieces = split_on(out, ids.eot)
            assert len(pieces) == len(originals)  # same separators, same order
            for orig, got in zip(originals, pieces):
                if not orig:
                    assert got == []  # empty pieces are left alone
                    continue
                assert got[0] == ids.fim_prefix
                assert undo_fim(got, ids, tok) == dec(tok, orig)
            assert undo_fim_window(out, ids, tok) == dec(tok, w)


def test_fim_rebuilds_each_piece_from_its_own_draws(tok, ids):
    """Each FIM'd piece is exactly fim_format of its separately tokenized parts."""

    class Spy:
        def __init__(self, seed):
            self.rng, self.log = np.random.default_rng(seed), []

        def binomial(self, n, p):
            self.log.append(int(self.rng.binomial(n, p)))
            return self.log[-1]

        def integers(self, low, high, size):
            self.log.append(self.rng.integers(low, high, size))
            return self.log[-1]

    window = stream(tok, ids)[3:200]
    originals = [p for p in split_on(window, ids.eot) if p]
    for seed in range(10):
        spy = Spy(seed)
        out = apply_fim(window, spy, tok, fim_rate=0.6, fim_spm_rate=0.5, fit=False)
        got = [p for p in split_on(out, ids.eot) if p]
        draws = iter(spy.log)
        for orig, piece in zip(originals, got, strict=True):
            if not next(draws):
                assert piece == orig
                continue
            text = dec(tok, orig)
            lo, hi = sorted(int(c) for c in next(draws))
            spm = bool(next(draws))
            parts = enc(tok, text[:lo]), enc(tok, text[lo:hi]), enc(tok, text[hi:])
            assert piece == fim_format(*parts, ids, spm=spm)
        assert next(draws, None) is None


def test_fim_rate_zero_is_identity_and_draws_nothing(tok, ids):
    window = stream(tok, ids)[5:86]
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    s = FillInTheMiddle(tok, fim_rate=0.0)(window, rng)
    assert s["input_ids"].tolist() == window[:-1].tolist()
    assert s["labels"].tolist() == window[1:].tolist()
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("spm_rate", [0.0, 1.0])
def test_spm_rate_selects_the_layout(tok, ids, spm_rate):
    window = stream(tok, ids)[2:300]
    n_psm = n_spm = 0
    for seed in range(30):
        out = apply_fim(window, np.random.default_rng(seed), tok, fim_rate=1.0, fim_spm_rate=spm_rate, fit=False)
        for piece in split_on(out, ids.eot):
            if not piece:
                continue
            s = piece.index(ids.fim_suffix)
            m = piece.index(ids.fim_middle)
            if s == 1:  # SPM, or PSM with an empty prefix
                n_spm += 1
            else:
                n_psm += 1
                assert s < m
    if spm_rate == 1.0:
        assert n_psm == 0 and n_spm > 0
    else:
        assert n_psm > 0 and n_spm < n_psm / 5  # only PSM pieces whose prefix cut landed at 0


def test_output_is_truncated_to_the_window(tok, ids):
    window = stream(tok, ids)[:129]  # canonical tokens: FIM adds sentinels and breaks merges
    obj = FillInTheMiddle(tok, fim_rate=1.0)
    for seed in range(10):
        full = apply_fim(window, np.random.default_rng(seed), tok, fim_rate=1.0, fit=False)
        assert len(full) > len(window)
        seq = obj.apply_fim(window, np.random.default_rng(seed))
        assert seq.tolist() == full[: len(window)].tolist()
        s = obj(window, np.random.default_rng(seed))
        assert s["input_ids"].shape == s["labels"].shape == (128,)
        assert s["input_ids"].dtype == s["labels"].dtype == np.int64


def test_token_shard_dtypes_are_accepted(tok, ids):
    # Token shards are uint16 memmaps; the DataModule may hand their slices over unconverted.
    window = stream(tok, ids)[:65]
    for obj in (AutoRegressive(), FillInTheMiddle(tok)):
        a = obj(window.astype(np.uint16), np.random.default_rng(1))
        b = obj(window, np.random.default_rng(1))
        assert a["input_ids"].dtype == np.int64
        assert a["input_ids"].tolist() == b["input_ids"].tolist()
        assert a["labels"].tolist() == b["labels"].tolist()


def _byte_tokens(tok, text: str) -> list[int]:
    # One token per character: decodes to the same text but re-tokenizes much shorter.
    return [t for ch in text for t in enc(tok, ch)]


def test_output_is_right_padded_when_fim_shrinks_the_window(tok, ids):
    window = np.array(_byte_tokens(tok, DOCS[1]) + [ids.eot] + _byte_tokens(tok, DOCS[2])[:60], dtype=np.int64)
    for seed in range(10):
        full = apply_fim(window, np.random.default_rng(seed), tok, fim_rate=1.0, fit=False)
        seq = apply_fim(window, np.random.default_rng(seed), tok, fim_rate=1.0)
        assert len(full) < len(window) and len(seq) == len(window)
        assert seq[: len(full)].tolist() == full.tolist()
        assert (seq[len(full) :] == ids.fim_pad).all()


def test_mask_pad_masks_exactly_the_pad_targets(tok, ids):
    window = np.array(_byte_tokens(tok, DOCS[1]) + [ids.eot] + _byte_tokens(tok, DOCS[0]), dtype=np.int64)
    rng_seed = 11
    masked = FillInTheMiddle(tok, fim_rate=1.0, mask_pad=True)(window, np.random.default_rng(rng_seed))
    plain = FillInTheMiddle(tok, fim_rate=1.0)(window, np.random.default_rng(rng_seed))
    assert masked["input_ids"].tolist() == plain["input_ids"].tolist()
    targets = plain["labels"]
    is_pad = targets == ids.fim_pad
    assert is_pad.sum() > 10
    assert (masked["labels"][is_pad] == IGNORE_INDEX).all()
    assert masked["labels"][~is_pad].tolist() == targets[~is_pad].tolist()
    assert (plain["labels"] != IGNORE_INDEX).all()  # BigCode's default: pad counts in the loss


def test_same_seed_same_sample_and_seeds_differ(tok, ids):
    window = stream(tok, ids)[10:267]
    obj = FillInTheMiddle(tok)
    a = obj(window, np.random.default_rng(123))
    b = obj(window, np.random.default_rng(123))
    assert a["input_ids"].tolist() == b["input_ids"].tolist()
    others = {tuple(obj(window, np.random.default_rng(s))["input_ids"].tolist()) for s in range(8)}
    assert len(others) > 1


def test_objectives_pickle(tok, ids):
    window = stream(tok, ids)[:200]
    for obj in (AutoRegressive(tokenizer=tok), FillInTheMiddle(tok, fim_rate=0.9, mask_pad=True)):
        clone = pickle.loads(pickle.dumps(obj))
        a, b = obj(window, np.random.default_rng(4)), clone(window, np.random.default_rng(4))
        assert a["input_ids"].tolist() == b["input_ids"].tolist()
        assert a["labels"].tolist() == b["labels"].tolist()


def test_non_ascii_window_cut_mid_character_still_fits(tok, ids):
    # The documented limitation: a piece that starts mid-UTF-8 character decodes to U+FFFD.
    text = "s = 'héllo wörld ✓ 日本語'\n" * 4
    toks = enc(tok, text) + [ids.eot] + enc(tok, text)
    for start in range(0, 12):
        window = np.array(toks[start : start + 41], dtype=np.int64)
        for seed in range(5):
            s = FillInTheMiddle(tok, fim_rate=1.0)(window, np.random.default_rng(seed))
            assert s["input_ids"].shape == (40,)


# --- undo_fim -------------------------------------------------------------------------------


def test_undo_fim_handles_pad_plain_and_truncated_documents(tok, ids):
    p, m, s = enc(tok, "def "), enc(tok, "add(a, b):"), enc(tok, "\n    return a + b\n")
    for spm in (False, True):
        doc = fim_format(p, m, s, ids, spm) + [ids.fim_pad] * 3
        assert undo_fim(doc, ids) == p + m + s
    assert undo_fim(p + m, ids) == p + m  # not FIM'd
    with pytest.raises(ValueError, match="truncated"):
        undo_fim(fim_format(p, m, s, ids, False)[:4], ids)


# --- tokenizers -----------------------------------------------------------------------------


def test_starcoder_spelling_works():
    tok = train_tokenizer(DOCS * 4, vocab_size=300, spelling="starcoder")
    ids = special_ids(tok)
    assert ids.fim_prefix == tok.convert_tokens_to_ids("<fim_prefix>")
    window = np.array((enc(tok, DOCS[1]) + [ids.eot]) * 2, dtype=np.int64)[:90]
    s = FillInTheMiddle(tok, fim_rate=1.0)(window, np.random.default_rng(0))
    assert ids.fim_prefix in s["input_ids"].tolist()
    assert infill_prompt(tok, "a", "b")[0] == ids.fim_prefix


def test_tokenizer_without_fim_tokens_is_a_clear_error():
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.add_special_tokens([EOT])
    plain = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token=EOT)
    with pytest.raises(TokenizerError, match="fim objective.*objective=ar"):
        FillInTheMiddle(tokenizer=plain)
    with pytest.raises(TokenizerError, match="needs a tokenizer"):
        FillInTheMiddle(tokenizer=None)
    AutoRegressive(tokenizer=plain)  # AR does not care


@pytest.mark.parametrize("bad", [{"fim_rate": 1.5}, {"fim_spm_rate": -0.1}])
def test_rates_must_be_probabilities(tok, bad):
    with pytest.raises(ValueError, match="probability"):
        FillInTheMiddle(tok, **bad)


# --- Megatron compatibility -----------------------------------------------------------------


def _megatron_reference(sample, np_rng, tok, ids, fim_rate, fim_spm_rate):
    """BigCode Megatron's GPTDataset FIM block, restated step by step (legacy RandomState)."""

    def permute(piece):
        if not np_rng.binomial(1, fim_rate):
            return list(piece)
        text = dec(tok, piece)
        b = sorted(np_rng.randint(low=0, high=len(text) + 1, size=2))
        pre, mid, suf = enc(tok, text[: b[0]]), enc(tok, text[b[0] : b[1]]), enc(tok, text[b[1] :])
        if np_rng.binomial(1, fim_spm_rate):
            return [ids.fim_prefix, ids.fim_suffix, *suf, ids.fim_middle, *pre, *mid]
        return [ids.fim_prefix, *pre, ids.fim_suffix, *suf, ids.fim_middle, *mid]

    breaks = np.argwhere(sample == ids.eot)
    if breaks.shape != (0, 1):
        start, out = 0, []
        for loc in np.nditer(breaks):
            if loc - start > 0:
                out += permute(sample[start:loc]) + [ids.eot]
            start = loc + 1
        out += permute(sample[start:])
    else:
        out = permute(sample)
    out = out[: len(sample)]
    return out + [ids.fim_pad] * (len(sample) - len(out))


def test_megatron_quirks_with_random_state_match_megatron(tok, ids):
    data = stream(tok, ids)
    windows = [
        data[5:140],
        data[: len(enc(tok, DOCS[0])) + 1],
        np.concatenate([[ids.eot], data[:60], [ids.eot, ids.eot], data[60:90]]),
    ]
    for w in windows:
        for seed in range(20):
            ours = apply_fim(w, np.random.RandomState(seed), tok, fim_rate=0.5, fim_spm_rate=0.5, megatron_quirks=True)
            ref = _megatron_reference(w, np.random.RandomState(seed), tok, ids, 0.5, 0.5)
            assert ours.tolist() == ref


def test_default_keeps_separators_megatron_drops_some(tok, ids):
    body = enc(tok, DOCS[0])
    window = np.array([ids.eot, *body, ids.eot], dtype=np.int64)
    ours = apply_fim(window, np.random.default_rng(0), tok, fim_rate=1.0, fit=False)
    assert ours[0] == ids.eot and ours[-1] == ids.eot
    quirky = apply_fim(window, np.random.default_rng(0), tok, fim_rate=1.0, fit=False, megatron_quirks=True)
    # Megatron loses the leading separator and turns the empty tail into three bare sentinels.
    assert quirky[0] == ids.fim_prefix
    assert sorted(quirky[-3:].tolist()) == sorted([ids.fim_prefix, ids.fim_suffix, ids.fim_middle])
