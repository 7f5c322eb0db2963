"""TOFU truth ratio (specification §3.4).

Per question i, with ℓ̄(ã) the mean NLL of the "true" answer (the paraphrased answer on
forget/retain, the plain answer on real authors / world facts) and ℓ̄(â_1..n) those of its n ≥ 1
perturbed answers:

    p_c = exp(−ℓ̄(ã)),   p_w = exp(−(1/n) Σ_j ℓ̄(â_j)) = (Π_j P_norm(â_j))^{1/n}
    R_i = p_w / (p_c + ε)                                   ε = 1e-10 as in open-unlearning

The geometric mean over perturbations is what both codebases compute (the TOFU paper writes an
arithmetic mean of probabilities). With ε = 0 the ratio is computed in log space,
R = exp(ℓ̄(ã) − mean_j ℓ̄(â_j)), which cannot underflow.

Aggregators over the N raw ratios:

    closer_to_1_better:  (1/N) Σ_i min(R_i, 1/(R_i + ε))    forget set; 1 = true and false alike
    true_better:         (1/N) Σ_i max(0, 1 − R_i)          retain / real authors / world facts
    prob_mean:           (1/N) Σ_i p_c/(p_c + p_w) = (1/N) Σ_i 1/(1 + R_i)     (ε = 0 form)

Forget quality needs the raw R_i (KS is invariant under monotone maps, so R or 1/R agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from constrained_unlearn.evaluation.metrics._validation import finite_1d, same_length

__all__ = ["OU_EPSILON", "TruthRatioAggregator", "aggregate_truth_ratio", "truth_ratios"]

TruthRatioAggregator = Literal["closer_to_1_better", "true_better", "prob_mean"]
OU_EPSILON = 1e-10


def truth_ratios(
    true_nll: Sequence[float] | np.ndarray,
    perturbed_nll: Sequence[Sequence[float] | np.ndarray],
    *,
    epsilon: float = OU_EPSILON,
) -> np.ndarray:
    """Raw truth ratio R_i of every question (see the module docstring).

    Args:
        true_nll: ``[N]`` mean NLL of each question's true (paraphrased) answer.
        perturbed_nll: N lists of mean NLLs of the perturbed answers; any count ≥ 1, which
            may differ between questions.
        epsilon: added to p_c in the denominator (open-unlearning uses 1e-10; 0 gives the exact
            ratio in log space).

    Returns:
        ``[N]`` float64 raw ratios R_i ≥ 0.

    Raises:
        ValueError: on mismatched lengths, non-finite NLLs, a negative epsilon, or a question
            whose perturbed list is empty (naming the question index).
    """
    true = finite_1d(true_nll, "true_nll")
    same_length(true, perturbed_nll, "true_nll", "perturbed_nll")
    if epsilon < 0:
        raise ValueError(f"epsilon = {epsilon} must be ≥ 0 (use 1e-10 for open-unlearning)")
    mean_wrong = np.empty(len(true), dtype=np.float64)
    for i, wrong in enumerate(perturbed_nll):
        if len(wrong) == 0:
            raise ValueError(
                f"perturbed_nll[{i}] is empty: question {i} has no perturbed answer, so its "
                "truth ratio is undefined; drop the question or supply its perturbations"
            )
        mean_wrong[i] = finite_1d(list(wrong), f"perturbed_nll[{i}]").mean()
    if epsilon == 0:
        return np.exp(true - mean_wrong)
    return np.exp(-mean_wrong) / (np.exp(-true) + epsilon)


def aggregate_truth_ratio(
    ratios: Sequence[float] | np.ndarray,
    aggregator: TruthRatioAggregator,
    *,
    epsilon: float = OU_EPSILON,
) -> float:
    """Split score from raw ratios (``closer_to_1_better``, ``true_better`` or ``prob_mean``).

    Args:
        ratios: ``[N]`` raw truth ratios from [`truth_ratios`][constrained_unlearn.evaluation.metrics.truth_ratios].
        aggregator: see the module docstring.
        epsilon: guard in ``1/(R + ε)`` for ``closer_to_1_better`` (open-unlearning: 1e-10).

    Raises:
        ValueError: on an unknown aggregator, an empty or non-finite input, or a negative ratio.
    """
    r = finite_1d(ratios, "ratios")
    if r.size == 0:
        raise ValueError("ratios is empty: there is no question to aggregate")
    if (r < 0).any():
        raise ValueError(f"ratios[{int(np.argmax(r < 0))}] is negative; truth ratios are ≥ 0")
    if aggregator == "closer_to_1_better":
        return float(np.mean(np.minimum(r, 1.0 / (r + epsilon))))
    if aggregator == "true_better":
        return float(np.mean(np.maximum(0.0, 1.0 - r)))
    if aggregator == "prob_mean":
        return float(np.mean(1.0 / (1.0 + r)))
    raise ValueError(
        f"aggregator={aggregator!r} is not known; use 'closer_to_1_better', 'true_better' "
        "or 'prob_mean'"
    )
