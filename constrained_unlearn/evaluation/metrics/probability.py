"""TOFU answer probabilities (specification §3.1, §3.2).

With ℓ̄ the mean token NLL of an answer (EOS included):

    P_norm(y | q) = exp(−ℓ̄) = p(y | q)^{1/T}                       length-normalised probability

    P_opt = P_norm(a) / (P_norm(a) + Σ_{j=1}^{m} P_norm(â_j))       correct a vs wrong options â_j

P_opt is computed as a softmax over (−ℓ̄(a), −ℓ̄(â_1), …, −ℓ̄(â_m)), which is the same number
without underflow when the NLLs are large (e.g. after gradient ascent).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from constrained_unlearn.evaluation.metrics._validation import finite_1d, same_length

__all__ = ["normalized_probability", "option_normalized_probability"]


def normalized_probability(mean_nll: Sequence[float] | np.ndarray) -> np.ndarray:
    """``P_norm = exp(−ℓ̄)`` per example.

    Args:
        mean_nll: ``[N]`` mean token NLLs ℓ̄ (e.g. ``TokenStats.mean_nll()``).

    Returns:
        ``[N]`` float64 in (0, 1] for non-negative NLLs. The split score is its mean.
    """
    return np.exp(-finite_1d(mean_nll, "mean_nll"))


def option_normalized_probability(
    correct_nll: Sequence[float] | np.ndarray,
    wrong_nll: Sequence[Sequence[float] | np.ndarray],
) -> np.ndarray:
    """``P_opt`` per question: the correct answer's share of the normalised probability mass.

    Args:
        correct_nll: ``[N]`` mean NLL ℓ̄ of each question's correct answer.
        wrong_nll: N lists of mean NLLs of the wrong options (any count ≥ 1 per question).

    Returns:
        ``[N]`` float64 in (0, 1). The split score is its mean.

    Raises:
        ValueError: on mismatched lengths, non-finite values, or a question with no wrong option.
    """
    correct = finite_1d(correct_nll, "correct_nll")
    same_length(correct, wrong_nll, "correct_nll", "wrong_nll")
    out = np.empty(len(correct), dtype=np.float64)
    for i, (c, wrong) in enumerate(zip(correct, wrong_nll)):
        if len(wrong) == 0:
            raise ValueError(
                f"wrong_nll[{i}] is empty: question {i} has no wrong option to normalise against"
            )
        w = finite_1d(list(wrong), f"wrong_nll[{i}]")
        logits = np.concatenate([[-c], -w])
        top = logits.max()  # log Σ exp, shifted by the largest term (no overflow)
        out[i] = float(np.exp(-c - (top + np.log(np.exp(logits - top).sum()))))
    return out
