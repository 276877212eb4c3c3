"""The fill-in-the-middle format: how a document's prefix, middle and suffix are laid out around
the FIM sentinel tokens, how a model is prompted to infill, and how a layout is undone.

This is a property of the tokenizer's special tokens, not of a training objective: the ``fim``
objective writes it into training windows, ``santa infill``, the sample printed after training and
the evaluation's infilling prompts read it, and all of them must agree token for token. The
sentinels' spelling and ids live next door in :mod:`santa.data.tokenizer` (training a tokenizer
appends them, loading one checks them); the layout built from those ids lives here, and nowhere
else::

    PSM: <fim-prefix> prefix <fim-suffix> suffix <fim-middle> middle
    SPM: <fim-prefix> <fim-suffix> suffix <fim-middle> prefix middle

(SPM is the FIM paper's "variant 2", the one SantaCoder used: prefix and middle are adjacent, so at
inference the model simply continues the prefix.) An inference prompt is a layout with an empty
middle, which the model then writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import numpy as np

from santa.data.tokenizer import SpecialIds, rust_tokenizer, special_ids

__all__ = ["encode_text", "fim_format", "infill_prompt", "undo_fim", "undo_fim_window"]


def encode_text(backend: Any, text: str) -> list[int]:
    """``text``'s ids as the parts of a FIM layout are tokenized: separately, with no special
    tokens added (the Rust tokenizer directly: the HF wrapper may add special tokens or clean up
    spaces, which a FIM part must never get)."""
    return backend.encode(text, add_special_tokens=False).ids


def fim_format(
    prefix_ids: Sequence[int],
    middle_ids: Sequence[int],
    suffix_ids: Sequence[int],
    ids: SpecialIds,
    spm: bool,
) -> list[int]:
    """Lay out one document's three parts in PSM or SPM order (no randomness)."""
    if spm:
        return [ids.fim_prefix, ids.fim_suffix, *suffix_ids, ids.fim_middle, *prefix_ids, *middle_ids]
    return [ids.fim_prefix, *prefix_ids, ids.fim_suffix, *suffix_ids, ids.fim_middle, *middle_ids]


def infill_prompt(tokenizer: Any, prefix: str, suffix: str, spm: bool = False) -> list[int]:
    """The inference prompt: a training layout with an empty middle, which the model then writes.

    PSM: ``<fim-prefix> prefix <fim-suffix> suffix <fim-middle>``;
    SPM: ``<fim-prefix> <fim-suffix> suffix <fim-middle> prefix``.
    Built with :func:`fim_format` and the same separate tokenization as training, so the two
    layouts cannot drift apart.
    """
    backend = rust_tokenizer(tokenizer)
    return fim_format(encode_text(backend, prefix), [], encode_text(backend, suffix), special_ids(tokenizer), spm)


@overload
def undo_fim(token_ids: Sequence[int] | np.ndarray, ids: SpecialIds, tokenizer: None = None) -> list[int]: ...
@overload
def undo_fim(token_ids: Sequence[int] | np.ndarray, ids: SpecialIds, tokenizer: Any) -> str: ...
def undo_fim(token_ids: Sequence[int] | np.ndarray, ids: SpecialIds, tokenizer: Any = None) -> list[int] | str:
    """One FIM-formatted document (PSM or SPM, no separator) back in prefix-middle-suffix order.

    Trailing ``<fim-pad>`` is dropped (it can only be the window's right padding); a document that
    does not start with ``<fim-prefix>`` was not transformed and comes back as is. The ids are the
    separately tokenized parts, so they may differ from tokenizing the whole text; pass
    ``tokenizer`` to get the decoded text, which is exact for ASCII. A document whose sentinels
    were cut off by the window's end raises ValueError.
    """
    toks = [int(t) for t in token_ids]
    while toks and toks[-1] == ids.fim_pad:
        toks.pop()
    if toks and toks[0] == ids.fim_prefix:
        try:
            s = toks.index(ids.fim_suffix, 1)
            m = toks.index(ids.fim_middle, s + 1)
        except ValueError:
            raise ValueError(
                "truncated FIM document: it starts with <fim-prefix> but lacks <fim-suffix> or "
                "<fim-middle> after it (the window probably cut it off)"
            ) from None
        # PSM: P p S s M m -> p m s.  SPM: P S s M p m -> (p m) s; its "prefix" slot is empty.
        toks = toks[1:s] + toks[m + 1 :] + toks[s + 1 : m]
    if tokenizer is None:
        return toks
    return rust_tokenizer(tokenizer).decode(toks, skip_special_tokens=False)


def undo_fim_window(window: Sequence[int] | np.ndarray, ids: SpecialIds, tokenizer: Any = None) -> list[int] | str:
    """Undo FIM in every document of a transformed window, separators kept; for inspecting batches.

    A document whose sentinels the window cut off is left as it is.
    """
    toks = [int(t) for t in window]
    out: list[int] = []
    start = 0
    ends = [i for i, t in enumerate(toks) if t == ids.eot] + [len(toks)]
    for end in ends:
        piece = toks[start:end]
        try:
            out += undo_fim(piece, ids)
        except ValueError:
            out += piece
        if end < len(toks):
            out.append(ids.eot)
        start = end + 1
    if tokenizer is None:
        return out
    return rust_tokenizer(tokenizer).decode(out, skip_special_tokens=False)
