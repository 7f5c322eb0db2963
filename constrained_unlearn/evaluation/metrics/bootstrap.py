"""Percentile bootstrap confidence interval for a mean (original MUSE reports 95 % CIs).

Draw R resamples of size N with replacement from x_1..x_N (numpy ``default_rng(seed)``), take
each resample's mean m_r, and return the empirical quantiles

    (Q_{(1−c)/2}(m_1..m_R),  Q_{(1+c)/2}(m_1..m_R))

with numpy's default linear interpolation. Same seed, same data → same interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from constrained_unlearn.evaluation.metrics._validation import finite_1d

__all__ = ["bootstrap_ci"]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` for the mean of ``values``.

    Args:
        values: ``[N]`` per-example scores (finite; drop NaN rows first).
        confidence: coverage c in (0, 1).
        n_resamples: number of resamples R ≥ 1.
        seed: seed of the resampling generator.

    Raises:
        ValueError: on empty or non-finite values, c outside (0, 1), or R < 1.
    """
    x = finite_1d(values, "values")
    if x.size == 0:
        raise ValueError("values is empty: there is no mean to bound")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence = {confidence} must be in (0, 1), e.g. 0.95")
    if n_resamples < 1:
        raise ValueError(f"n_resamples = {n_resamples} must be ≥ 1")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, x.size, size=(n_resamples, x.size))
    means = x[indices].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)
