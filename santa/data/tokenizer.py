"""Byte-level BPE tokenizer as SantaCoder trained it: digits split one by one, then GPT-2's
byte-level regex; the special tokens appended *after* the BPE vocabulary (so the paper's
`<|endoftext|>` is id 49152 with a 49152-entry BPE)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from santa.errors import SantaError

log = logging.getLogger(__name__)

EOT = "<|endoftext|>"
# SantaCoder spells the sentinels with dashes; StarCoder later switched to underscores.
FIM_SPELLINGS: dict[str, tuple[str, str, str, str]] = {
    "santacoder": ("<fim-prefix>", "<fim-middle>", "<fim-suffix>", "<fim-pad>"),
    "starcoder": ("<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"),
}
SPECIAL_TOKENS: tuple[str, ...] = (EOT, *FIM_SPELLINGS["santacoder"])


class TokenizerError(SantaError, ValueError):
    """A tokenizer that santa cannot train with (missing special tokens, wrong file)."""


@dataclass(frozen=True)
class SpecialIds:
    eot: int
    fim_prefix: int
    fim_middle: int
    fim_suffix: int
    fim_pad: int


def rust_tokenizer(tokenizer: Any) -> Tokenizer:
    """The Rust ``tokenizers.Tokenizer`` behind a transformers fast tokenizer (a bare one as is).

    Hot loops (tokenizing shards, FIM's ~3 calls per piece, fertility) call it directly: the HF
    wrapper's per-call overhead would dominate, and it may add special tokens or clean up spaces.
    """
    backend = tokenizer if isinstance(tokenizer, Tokenizer) else getattr(tokenizer, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        raise TypeError(f"expected a fast (Rust-backed) tokenizer, got {type(tokenizer).__name__}")
    return backend


def special_tokens(spelling: str = "santacoder") -> tuple[str, ...]:
    if spelling not in FIM_SPELLINGS:
        raise TokenizerError(f"unknown FIM spelling {spelling!r}; choose one of {sorted(FIM_SPELLINGS)}")
    return (EOT, *FIM_SPELLINGS[spelling])


def _wrap(tok: Tokenizer, spelling: str) -> PreTrainedTokenizerFast:
    eot, prefix, middle, suffix, pad = special_tokens(spelling)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=eot,
        eos_token=eot,
        unk_token=eot,
        # A pad token lets batched generation left-pad; <fim-pad> is what FIM pads with anyway.
        pad_token=pad,
        additional_special_tokens=[prefix, middle, suffix, pad],
        clean_up_tokenization_spaces=False,
        model_max_length=int(1e30),
    )


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    spelling: str = "santacoder",
    length: int | None = None,
    show_progress: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of ``vocab_size`` entries (bytes included), specials appended after."""
    if vocab_size < 257:
        raise TokenizerError(f"vocab_size={vocab_size} is too small: a byte-level BPE needs at least 257")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=show_progress,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=length)
    learned = tok.get_vocab_size()
    if learned < vocab_size:
        log.warning(
            "the corpus yielded only %d BPE entries of the %d asked for; the special tokens follow "
            "at id %d. Give the tokenizer more text or lower tokenizer.vocab_size.",
            learned,
            vocab_size,
            learned,
        )
    tok.add_special_tokens(list(special_tokens(spelling)))
    return _wrap(tok, spelling)


def detect_spelling(tokenizer: PreTrainedTokenizerFast | Tokenizer) -> str:
    vocab = tokenizer.get_vocab()
    for spelling, tokens in FIM_SPELLINGS.items():
        if all(t in vocab for t in tokens):
            return spelling
    raise TokenizerError(
        "the tokenizer has no FIM sentinel tokens (neither "
        + " nor ".join(", ".join(t) for t in FIM_SPELLINGS.values())
        + ")"
    )


def special_ids(tokenizer: PreTrainedTokenizerFast | Tokenizer) -> SpecialIds:
    """The ids of `<|endoftext|>` and the four FIM sentinels, in either spelling."""
    vocab = tokenizer.get_vocab()
    if EOT not in vocab:
        raise TokenizerError(f"the tokenizer has no {EOT!r} token")
    prefix, middle, suffix, pad = FIM_SPELLINGS[detect_spelling(tokenizer)]
    return SpecialIds(vocab[EOT], vocab[prefix], vocab[middle], vocab[suffix], vocab[pad])


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer directory (or tokenizer.json) and check santa's special tokens are there."""
    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise TokenizerError(
            f"no tokenizer at {path}: expected a directory with tokenizer.json or the file itself. "
            "Train one with `python train.py` (stage tokenizer) or point tokenizer.path at an HF tokenizer."
        )
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises plain Exceptions for malformed JSON
        raise TokenizerError(f"{file} is not a valid tokenizers JSON file: {exc}") from exc
    vocab = tok.get_vocab(with_added_tokens=True)
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing and EOT in vocab and all(t in vocab for t in FIM_SPELLINGS["starcoder"]):
        missing = []
        spelling = "starcoder"
    else:
        spelling = "santacoder"
    if missing:
        raise TokenizerError(
            f"tokenizer {file} lacks the special tokens {missing}: santa's FIM objective and "
            "generation need <|endoftext|> and the four FIM sentinels. Retrain it with santa "
            "(delete the file and rerun `python train.py`), or add them with "
            "tokenizer.add_special_tokens and save it again."
        )
    return _wrap(tok, spelling)


def tokenizer_from_json(text: str) -> PreTrainedTokenizerFast:
    """A tokenizer from its full definition (tokenizers JSON, as a checkpoint carries it), with
    santa's special tokens in whichever spelling it has."""
    tok = Tokenizer.from_str(text)
    return _wrap(tok, detect_spelling(_wrap(tok, "santacoder")))


def fingerprint(tokenizer: PreTrainedTokenizerFast | Tokenizer) -> str:
    """A short stable hash of the tokenizer's full definition (keys caches of token shards); a
    bare ``tokenizers.Tokenizer`` gets the same as the fast tokenizer wrapping it."""
    return hashlib.sha256(rust_tokenizer(tokenizer).to_str().encode()).hexdigest()[:16]


def padded_vocab_size(n: int, multiple: int = 128) -> int:
    """Embedding rows: the tokenizer's size rounded up (SantaCoder: 49157 -> 49280)."""
    return -(-n // multiple) * multiple
