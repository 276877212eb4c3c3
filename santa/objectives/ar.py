"""Plain autoregressive (next-token) objective: the window is the sample."""

from __future__ import annotations

from typing import Any

import numpy as np

from santa.objectives.base import to_sample


class AutoRegressive:
    """Identity transform; every target token counts in the loss.

    Takes ``tokenizer`` (every objective's context) and ignores other keywords; it declares no
    parameters, so the registry refuses any in ``objective.params`` (``**unused`` goes nowhere).
    """

    def __init__(self, tokenizer: Any = None, **unused: Any) -> None:
        del tokenizer, unused

    def __call__(self, window: np.ndarray, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        return to_sample(window)

    def __repr__(self) -> str:
        return "AutoRegressive()"
