"""Statistics of the efficacy protocol: the median and its bootstrap interval.

With the handful of seeds a CPU budget allows (3–5), the bootstrap distribution of the median
can be enumerated exactly instead of sampled: every one of the ``n**n`` ordered resamples of
``n`` values is equally likely. The percentile interval is then read off that exact
distribution, so the interval is deterministic (no resampling noise) and testable by hand.

For ``n = 3`` distinct sorted values ``a < b < c`` the median of a resample is ``a`` when at
least two of the three draws are ``a``: ``P = 3·(1/3)²·(2/3) + (1/3)³ = 7/27``; likewise ``c``
with ``7/27`` and ``b`` with ``13/27``. The 95 % percentile interval is therefore ``[a, c]``:
with three seeds the bootstrap interval of the median is the range of the values.
"""

from __future__ import annotations

__all__ = ["MAX_EXACT_RESAMPLES", "bootstrap_median_interval", "median", "summarize"]

import itertools
import math
import random
from collections.abc import Sequence

MAX_EXACT_RESAMPLES = 200_000
"""Above ``n**n`` resamples the interval is estimated from 20,000 random resamples."""


def median(values: Sequence[float]) -> float:
    """The sample median (mean of the two middle values for an even count); NaN if empty."""
    data = sorted(float(v) for v in values)
    n = len(data)
    if n == 0:
        return math.nan
    mid = n // 2
    return data[mid] if n % 2 else 0.5 * (data[mid - 1] + data[mid])


def _weighted_quantile(samples: list[tuple[float, float]], q: float) -> float:
    """The smallest value whose cumulative weight reaches ``q`` (``samples``: (value, weight))."""
    total = sum(w for _, w in samples)
    acc = 0.0
    for value, weight in sorted(samples):
        acc += weight
        if acc >= q * total - 1e-12:
            return value
    return sorted(samples)[-1][0]


def bootstrap_median_interval(
    values: Sequence[float], level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values`` at ``level`` (0 < level < 1).

    The bootstrap distribution is exact (all ``n**n`` resamples) when
    ``n**n ≤ MAX_EXACT_RESAMPLES`` (n ≤ 6), else estimated from 20,000 resamples drawn with
    ``random.Random(seed)``. Returns ``(q_{(1-level)/2}, q_{(1+level)/2})``; for one value,
    ``(v, v)``; for none, ``(nan, nan)``. NaN values are dropped first.

    Raises:
        ValueError: ``level`` outside ``(0, 1)``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")
    data = [float(v) for v in values if not math.isnan(float(v))]
    n = len(data)
    if n == 0:
        return (math.nan, math.nan)
    if n == 1:
        return (data[0], data[0])
    lo_q, hi_q = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    if n**n <= MAX_EXACT_RESAMPLES:
        counts: dict[float, int] = {}
        for resample in itertools.product(data, repeat=n):
            m = median(resample)
            counts[m] = counts.get(m, 0) + 1
        dist = [(m, float(c)) for m, c in counts.items()]
    else:
        rng = random.Random(seed)
        dist = [(median(rng.choices(data, k=n)), 1.0) for _ in range(20_000)]
    return (_weighted_quantile(dist, lo_q), _weighted_quantile(dist, hi_q))


def summarize(values: Sequence[float], level: float = 0.95) -> dict[str, float | int]:
    """``{"median", "lo", "hi", "min", "max", "n"}`` of ``values`` (NaNs dropped)."""
    data = [float(v) for v in values if not math.isnan(float(v))]
    lo, hi = bootstrap_median_interval(data, level)
    return {
        "median": median(data),
        "lo": lo,
        "hi": hi,
        "min": min(data) if data else math.nan,
        "max": max(data) if data else math.nan,
        "n": len(data),
    }
