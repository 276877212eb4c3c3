"""The objective plugin contract.

An objective turns one packed training window into one training sample. The DataModule cuts the
packed token stream (documents concatenated, each followed by ``<|endoftext|>``) into windows of
``seq_len + 1`` token ids, builds the objective once as ``cls(tokenizer=tok, **params)`` from the
``objective`` config group, and calls it once per window inside DataLoader worker processes.

Writing one (say, span corruption) takes three things:

1. A class whose constructor accepts ``tokenizer`` as a keyword (ignore it if you do not need it)
   plus your own keyword parameters; Hydra passes those from ``conf/objective/<name>.yaml``.
2. ``__call__(window, rng) -> dict[str, np.ndarray]``:

   - ``window``: int64 array of ``seq_len + 1`` token ids. It usually starts and ends in the middle
     of a document and may contain several ``<|endoftext|>`` separators. Do not modify it in
     place; it may be a view of a shared buffer.
   - ``rng``: a ``numpy.random.Generator`` seeded by the DataModule for this window. Take every
     random draw from it and keep no random state of your own: that is what makes a sample
     reproducible from (seed, epoch, window index) regardless of how many workers run.
   - return at least ``input_ids`` and ``labels``, both int64 of shape ``[seq_len]``; ``labels``
     holds ``IGNORE_INDEX`` (-100) where the loss is masked. If your transform produces another
     ``seq_len + 1`` sequence, :func:`to_sample` does the shift and the masking for you. Extra
     keys are passed through to the batch untouched.

3. Picklability: the object is shipped to worker processes, so hold only plain data (ints,
   floats, arrays, the tokenizer) -- no open files, locks, or generators. Cache special-token ids
   as ints at construction rather than looking them up per call.

Then register it in your distribution's ``pyproject.toml``::

    [project.entry-points."santa.objectives"]
    span = "my_pkg.span:SpanCorruption"

and select it with ``python train.py objective=span``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

# PyTorch's cross-entropy default ignore_index; the LightningModule relies on it.
IGNORE_INDEX = -100


@runtime_checkable
class Objective(Protocol):
    """What the DataModule calls per window. A Protocol so plugins need not import santa."""

    def __call__(self, window: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]: ...


def to_sample(sequence: np.ndarray, loss_mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Next-token-prediction sample from a ``seq_len + 1`` sequence.

    ``loss_mask`` (bool, same length as ``sequence``) marks which *tokens* count as targets;
    position 0 is never a target, so its value is ignored.
    """
    seq = np.asarray(sequence, dtype=np.int64)
    if seq.ndim != 1 or seq.shape[0] < 2:
        raise ValueError(f"a window needs at least 2 token ids in one dimension, got shape {seq.shape}")
    input_ids = seq[:-1].copy()
    labels = seq[1:].copy()
    if loss_mask is not None:
        mask = np.asarray(loss_mask, dtype=bool)
        if mask.shape != seq.shape:
            raise ValueError(f"loss_mask has shape {mask.shape}, the sequence {seq.shape}")
        labels[~mask[1:]] = IGNORE_INDEX
    return {"input_ids": input_ids, "labels": labels}
