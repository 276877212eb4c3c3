"""The unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models Trained on
Code", eq. 1): with n samples of a problem of which c are correct,

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i)

The product form never builds the huge binomials (C(200, 100) ~ 9e58), so it is exact to float
precision for any n. k > n is refused: fewer samples than k say nothing about pass@k.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def pass_at_k_per_problem(
    n_samples: int | Sequence[int] | np.ndarray, n_correct: Sequence[int] | np.ndarray, k: int
) -> np.ndarray:
    """pass@k of each problem. ``n_samples`` is one count for all problems or one per problem."""
    correct = np.asarray(n_correct, dtype=np.int64).reshape(-1)
    if np.ndim(n_samples) == 0:
        samples = np.full(correct.shape, int(n_samples), dtype=np.int64)  # type: ignore[arg-type]
    else:
        samples = np.asarray(n_samples, dtype=np.int64).reshape(-1)
    if samples.shape != correct.shape:
        raise ValueError(f"{samples.size} sample counts for {correct.size} problems")
    k = int(k)
    if k < 1:
        raise ValueError(f"pass@k needs k >= 1, got k={k}")
    if np.any(correct < 0) or np.any(correct > samples):
        raise ValueError("each problem needs 0 <= n_correct <= n_samples")
    if np.any(samples < k):
        short = int(np.argmin(samples))
        raise ValueError(
            f"pass@{k} needs at least {k} samples per problem; problem {short} has {int(samples[short])}. "
            f"Generate n >= {k} samples (the paper uses n=200 for pass@10 and pass@100) or drop k={k}."
        )
    out = np.empty(samples.shape, dtype=np.float64)
    for i, (n, c) in enumerate(zip(samples.tolist(), correct.tolist())):
        out[i] = 1.0 if n - c < k else 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))
    return out


def pass_at_k(n_samples: int | Sequence[int] | np.ndarray, n_correct: Sequence[int] | np.ndarray, k: int) -> float:
    """Mean pass@k over problems (the number papers report)."""
    per = pass_at_k_per_problem(n_samples, n_correct, k)
    if per.size == 0:
        raise ValueError("pass@k of zero problems is undefined")
    return float(per.mean())


def pass_at_ks(
    n_samples: int | Sequence[int] | np.ndarray, n_correct: Sequence[int] | np.ndarray, ks: Iterable[int]
) -> dict[str, float]:
    """``{"pass@1": ..., "pass@10": ...}`` for every k (each k must be <= every problem's n)."""
    return {f"pass@{k}": pass_at_k(n_samples, n_correct, k) for k in ks}
