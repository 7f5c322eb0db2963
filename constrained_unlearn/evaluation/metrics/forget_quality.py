"""TOFU forget quality: a two-sample Kolmogorov–Smirnov test (specification §3.5).

With F_unl and F_ret the empirical CDFs of the per-question raw truth ratios of the evaluated
model (n questions) and of the retain model on the same forget split (m questions):

    D  = sup_x |F_unl(x) − F_ret(x)|,        FQ = p-value(D; n, m)

the exact two-sided p-value under H0 (what ``scipy.stats.ks_2samp`` computes with
``method="auto"`` at TOFU sizes), counted here without scipy (`ks_pvalue_exact`): with
``k = D·n·m`` (an integer: D is a difference ``|i/n − j/m|``), it is the share of the
``C(n+m, n)`` monotone lattice paths from (0, 0) to (n, m) that reach a point with
``|i·m − j·n| ≥ k``:

    p = #{paths touching |i·m − j·n| ≥ k} / C(n + m, n)

counted exactly in integers (so even a 1e-239 floor is correctly rounded) in
O(n·m); above `EXACT_MAX_CELLS` lattice points scipy's asymptotic distribution is used, as
scipy does for large samples.

Complete separation (every value of one sample below every value of the other) gives D = 1, the
most extreme outcome. Under H0 every one of the C(n+m, n) orderings of the pooled sample is
equally likely and exactly two of them separate completely (either sample first), so the
smallest reachable p-value is

    floor(n, m) = 2 / C(n + m, n)          (n = m: 2 / C(2n, n); n = 40 → 1.86e-23,
                                             200 → 1.94e-119, 400 → 1.06e-239)

The recurring 1.94e-119 / 1.06e-239 in published tables are these floors: such an FQ says
"completely separated", not "1e-239 as good as something else". ``ForgetQuality.describe()``
says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from constrained_unlearn.evaluation.metrics._validation import finite_1d

__all__ = [
    "EXACT_MAX_CELLS",
    "ForgetQuality",
    "forget_quality",
    "ks_pvalue_exact",
    "ks_statistic",
    "separation_floor",
    "separation_floor_log10",
]

EXACT_MAX_CELLS = 4_000_000
"""Largest ``(n+1)(m+1)`` counted exactly (n = m = 2000: about a second); beyond, asymptotic."""


def ks_statistic(x: np.ndarray, y: np.ndarray) -> float:
    """``D = sup_t |F_x(t) − F_y(t)|`` of two 1-d samples (ties allowed)."""
    pooled = np.concatenate([x, y])
    fx = np.searchsorted(np.sort(x), pooled, side="right") / x.size
    fy = np.searchsorted(np.sort(y), pooled, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


def ks_pvalue_exact(statistic: float, n: int, m: int) -> float:
    """Exact two-sided ``P(D_{n,m} ≥ statistic)`` under H0 (continuous distributions).

    Counts, by dynamic programming over the lattice, the monotone paths from (0, 0) to (n, m)
    that stay strictly inside ``|i·m − j·n| < k`` with ``k = round(statistic · n · m)``; the
    p-value is ``1 − inside / C(n+m, n)``, formed as an exact fraction and rounded once.
    """
    _check_sizes(n, m)
    k = round(statistic * n * m)
    if k <= 0:
        return 1.0
    row = [0] * (m + 1)  # row[j]: paths from (0, 0) to (i, j) that stayed inside
    for j in range(m + 1):
        if abs(j * n) >= k:
            break
        row[j] = 1
    for i in range(1, n + 1):
        im = i * m
        left = 0
        for j in range(m + 1):
            left = row[j] + left if abs(im - j * n) < k else 0
            row[j] = left
    inside = row[m]
    total = math.comb(n + m, n)
    return min(1.0, (total - inside) / total)


def separation_floor(n: int, m: int) -> float:
    """``2 / C(n+m, n)``: the exact KS p-value of complete separation of samples of sizes n, m.

    Exact integer binomial, then one correctly rounded division; returns 0.0 where the value is
    below the smallest float64 (n = m ≳ 540). See [`separation_floor_log10`][constrained_unlearn.evaluation.metrics.separation_floor_log10] for those.
    """
    _check_sizes(n, m)
    return 2 / math.comb(n + m, n)


def separation_floor_log10(n: int, m: int) -> float:
    """``log10(2 / C(n+m, n))``, finite for every size."""
    _check_sizes(n, m)
    log_comb = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return (math.log(2.0) - log_comb) / math.log(10.0)


def _check_sizes(n: int, m: int) -> None:
    if n < 1 or m < 1:
        raise ValueError(f"sample sizes must be ≥ 1; got n={n}, m={m}")


@dataclass(frozen=True)
class ForgetQuality:
    """Result of `forget_quality`.

    Attributes:
        pvalue: the KS p-value (the FQ number).
        floor: ``2 / C(n+m, n)``, the p-value of complete separation at these sizes.
        complete_separation: true when the two samples do not interleave (D = 1).
        n: number of questions of the evaluated model.
        m: number of questions of the retain model.
        statistic: the KS statistic D.
    """

    pvalue: float
    floor: float
    complete_separation: bool
    n: int
    m: int
    statistic: float

    def describe(self) -> str:
        """Human-readable FQ that never prints a separation floor as if it were a measurement."""
        if self.complete_separation:
            if self.floor > 0:
                floor = f"{self.floor:.3g}"
            else:
                floor = f"10^{separation_floor_log10(self.n, self.m):.1f}"
            return f"complete separation (floor {floor}; n={self.n}, m={self.m})"
        return f"{self.pvalue:.3g} (KS p-value, D={self.statistic:.3g}; n={self.n}, m={self.m})"


def forget_quality(
    unlearned_ratios: Sequence[float] | np.ndarray,
    retain_ratios: Sequence[float] | np.ndarray | None,
) -> ForgetQuality:
    """KS test between the evaluated model's and the retain model's raw truth ratios.

    Args:
        unlearned_ratios: ``[n]`` raw R_i of the evaluated model on ``forgetXX_perturbed``.
        retain_ratios: ``[m]`` raw R_i of the retain model on the **same** split (from its
            evaluation log). Required: there is no default to fall back to.

    Returns:
        [`ForgetQuality`][constrained_unlearn.evaluation.metrics.ForgetQuality].

    Raises:
        ValueError: if ``retain_ratios`` is missing or empty, or any ratio is non-finite.
    """
    if retain_ratios is None:
        raise ValueError(
            "retain_ratios is required: forget quality compares against the retain model's "
            "per-question truth ratios on the same forget split (evaluate the retain model "
            "or load its log)"
        )
    unl = finite_1d(unlearned_ratios, "unlearned_ratios")
    ret = finite_1d(retain_ratios, "retain_ratios")
    if unl.size == 0 or ret.size == 0:
        raise ValueError(
            f"both samples need ≥ 1 question; got {unl.size} unlearned and {ret.size} retain"
        )
    n, m = int(unl.size), int(ret.size)
    statistic = ks_statistic(unl, ret)
    if (n + 1) * (m + 1) <= EXACT_MAX_CELLS:
        pvalue = ks_pvalue_exact(statistic, n, m)
    else:  # scipy.stats is slow to import (~1 s): only for samples too large to count
        from scipy.stats import ks_2samp

        pvalue = float(ks_2samp(unl, ret).pvalue)
    separated = bool(unl.max() < ret.min() or ret.max() < unl.min())
    return ForgetQuality(
        pvalue=pvalue,
        floor=separation_floor(n, m),
        complete_separation=separated,
        n=n,
        m=m,
        statistic=statistic,
    )
