"""Fill-in-the-middle, as BigCode's Megatron-LM fork trained SantaCoder.

Per training window of ``seq_len + 1`` token ids:

1. split the window on ``<|endoftext|>``; the pieces are the non-empty runs between separators
   plus the run after the last separator (a window without a separator is one piece);
2. for each piece independently, with probability ``fim_rate``: decode it to text, draw two cut
   points uniformly in ``[0, len(text)]`` (characters, both ends included), sort them, tokenize
   prefix / middle / suffix separately, and lay them out -- with probability ``fim_spm_rate`` as
   SPM, otherwise as PSM (the layouts, their inference prompt and their undoing are the core's,
   :mod:`santa.data.fim_format`, shared with generation and evaluation);
3. re-join the pieces with the separators where they were, then cut the result back to the
   window's length or right-pad it with ``<fim-pad>``.

Random draws, per piece and in this order: one ``binomial(1, fim_rate)``; if it is 1, the two cut
points, then one ``binomial(1, fim_spm_rate)``. Santa's DataModule passes a
``numpy.random.Generator`` (cut points from ``Generator.integers``), whose stream differs from
Megatron's legacy ``RandomState`` (``randint``). Every function here also accepts a
``RandomState``; with ``megatron_quirks=True`` and the same tokenizer, the draws and the output
then match Megatron's ``permute`` for the same state. (Megatron keeps one RandomState per dataset
across samples, so its samples depend on access order; santa seeds one Generator per window.)

Known limitations, shared with Megatron:

- A window usually starts or ends inside a multi-byte UTF-8 character. The byte-level decode of
  such a piece yields U+FFFD, which re-tokenizes to the three bytes of U+FFFD: the FIM'd piece
  then differs from the original at its edges. ASCII text round-trips exactly.
- A literal sentinel string in the source text (``"<fim-middle>"``) re-tokenizes to the sentinel.

Where santa departs from Megatron by default (``megatron_quirks=False``): Megatron drops an
``<|endoftext|>`` that follows an empty piece (a window's leading separator, or back-to-back
separators), and it still "permutes" an empty trailing piece (drawing RNG and possibly emitting
three bare sentinels). Santa keeps every separator in place and leaves empty pieces alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np
from tokenizers import Tokenizer

from santa.data.fim_format import encode_text, fim_format
from santa.data.tokenizer import SpecialIds, TokenizerError, rust_tokenizer, special_ids
from santa.objectives.base import to_sample

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

Rng = np.random.Generator | np.random.RandomState
# The transformers wrapper or the Rust tokenizer behind it (FillInTheMiddle keeps the latter).
AnyTokenizer = Union["PreTrainedTokenizerFast", Tokenizer]

__all__ = ["FillInTheMiddle", "apply_fim", "permute_piece"]


def _bernoulli(rng: Rng, p: float) -> bool:
    return bool(rng.binomial(1, p))


def _cut_points(rng: Rng, n_chars: int) -> tuple[int, int]:
    if isinstance(rng, np.random.RandomState):
        cuts = rng.randint(low=0, high=n_chars + 1, size=2)
    else:
        cuts = rng.integers(low=0, high=n_chars + 1, size=2)
    lo, hi = sorted(int(c) for c in cuts)
    return lo, hi


def _check_rate(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return value


def permute_piece(
    piece: np.ndarray,
    rng: Rng,
    tokenizer: AnyTokenizer,
    ids: SpecialIds,
    fim_rate: float = 0.5,
    fim_spm_rate: float = 0.5,
) -> np.ndarray:
    """FIM one document piece (no separators inside) with probability ``fim_rate``.

    Megatron's ``permute(..., truncate_or_pad=False)``: the result may be longer or shorter than
    the piece; fitting to length happens once per window.
    """
    if not _bernoulli(rng, fim_rate):
        return piece
    backend = rust_tokenizer(tokenizer)
    text = backend.decode(np.asarray(piece).tolist(), skip_special_tokens=False)
    lo, hi = _cut_points(rng, len(text))
    prefix = encode_text(backend, text[:lo])
    middle = encode_text(backend, text[lo:hi])
    suffix = encode_text(backend, text[hi:])
    spm = _bernoulli(rng, fim_spm_rate)
    return np.asarray(fim_format(prefix, middle, suffix, ids, spm), dtype=np.int64)


def _fit(seq: np.ndarray, length: int, pad_id: int) -> np.ndarray:
    if seq.shape[0] >= length:
        return seq[:length]
    return np.concatenate([seq, np.full(length - seq.shape[0], pad_id, dtype=np.int64)])


def apply_fim(
    window: np.ndarray,
    rng: Rng,
    tokenizer: AnyTokenizer,
    *,
    fim_rate: float = 0.5,
    fim_spm_rate: float = 0.5,
    ids: SpecialIds | None = None,
    fit: bool = True,
    megatron_quirks: bool = False,
) -> np.ndarray:
    """The window-level FIM transform: int64 array of ``len(window)`` ids (``fit=False``: the
    re-joined pieces before truncation or padding, for inspection and tests)."""
    window = np.asarray(window, dtype=np.int64)
    if ids is None:
        ids = special_ids(tokenizer)
    if fim_rate == 0:
        # Megatron skips the transform entirely here: no draws, no padding.
        return window.copy()

    eot = np.array([ids.eot], dtype=np.int64)
    parts: list[np.ndarray] = []
    start = 0
    for loc in np.flatnonzero(window == ids.eot).tolist():
        if loc > start:
            parts.append(permute_piece(window[start:loc], rng, tokenizer, ids, fim_rate, fim_spm_rate))
            parts.append(eot)
        elif not megatron_quirks:
            parts.append(eot)
        start = loc + 1
    if start < window.shape[0] or megatron_quirks:
        parts.append(permute_piece(window[start:], rng, tokenizer, ids, fim_rate, fim_spm_rate))
    out = np.concatenate(parts).astype(np.int64, copy=False) if parts else window[:0].copy()
    return _fit(out, window.shape[0], ids.fim_pad) if fit else out


class FillInTheMiddle:
    """FIM objective plugin (``objective=fim``).

    ``mask_pad=False`` reproduces BigCode: ``<fim-pad>`` and the sentinels all count in the loss.
    ``mask_pad=True`` sets the labels whose target is ``<fim-pad>`` to -100, so the model is not
    trained to predict padding; sentinels still count either way (predicting ``<fim-middle>``
    after the suffix is part of what FIM teaches). ``megatron_quirks``: see the module docstring.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerFast,
        fim_rate: float = 0.5,
        fim_spm_rate: float = 0.5,
        mask_pad: bool = False,
        megatron_quirks: bool = False,
    ) -> None:
        if tokenizer is None:
            raise TokenizerError("the fim objective needs a tokenizer (it decodes and re-tokenizes documents)")
        try:
            self.ids = special_ids(tokenizer)
        except TokenizerError as exc:
            raise TokenizerError(
                f"the fim objective cannot use this tokenizer: {exc}. Train one with santa "
                "(it adds <|endoftext|> and the FIM sentinels) or use objective=ar."
            ) from exc
        # A private copy of the Rust tokenizer that reads special-token text literally, as the
        # token shards were made: a literal "<|endoftext|>" inside source code must stay text when
        # a FIM piece is re-tokenized, not become a document separator.
        backend = Tokenizer.from_str(rust_tokenizer(tokenizer).to_str())
        backend.encode_special_tokens = True
        self.tokenizer = backend
        self.fim_rate = _check_rate("fim_rate", fim_rate)
        self.fim_spm_rate = _check_rate("fim_spm_rate", fim_spm_rate)
        self.mask_pad = bool(mask_pad)
        self.megatron_quirks = bool(megatron_quirks)

    def apply_fim(self, window: np.ndarray, rng: Rng) -> np.ndarray:
        """The ``seq_len + 1`` transform alone, before shifting into inputs and labels."""
        return apply_fim(
            window,
            rng,
            self.tokenizer,
            fim_rate=self.fim_rate,
            fim_spm_rate=self.fim_spm_rate,
            ids=self.ids,
            megatron_quirks=self.megatron_quirks,
        )

    def __call__(self, window: np.ndarray, rng: Rng) -> dict[str, np.ndarray]:
        seq = self.apply_fim(window, rng)
        return to_sample(seq, seq != self.ids.fim_pad if self.mask_pad else None)

    def __repr__(self) -> str:
        return (
            f"FillInTheMiddle(fim_rate={self.fim_rate}, fim_spm_rate={self.fim_spm_rate}, "
            f"mask_pad={self.mask_pad}, megatron_quirks={self.megatron_quirks})"
        )
