"""TOFU privacy leak from Min-K% AUCs (specification §3.10).

Inputs are open-unlearning-oriented Min-K% (k = 0.4) AUCs (→ 1 when memorised). They are
flipped to MUSE's orientation (1 − AUC, → 0 when memorised) before the relative difference:

    PrivLeak = ((1 − AUC_unl) − (1 − AUC_ret)) / ((1 − AUC_ret) + 1e-10) × 100

0: indistinguishable from the retain model; ≈ −100: forget set fully exposed (target model);
large positive: over-unlearning (the forget set now looks *less* familiar than unseen text).
The retain AUC has no default (open-unlearning silently falls back to 0.5).

``relative_difference`` is the generic ``(s − s_ref) / s_ref × 100`` without the flip.
"""

from __future__ import annotations

from constrained_unlearn.evaluation.metrics._validation import probability

__all__ = ["PRIVLEAK_EPSILON", "relative_difference", "tofu_privleak"]

PRIVLEAK_EPSILON = 1e-10


def tofu_privleak(auc_unlearned: float, *, auc_retain: float) -> float:
    """PrivLeak in percent from the evaluated and the retain model's Min-K% AUCs (OU orientation).

    Args:
        auc_unlearned: Min-K% (k = 0.4) forget-vs-holdout AUC of the evaluated model.
        auc_retain: the same AUC of the retain model on the same splits (from its log),
            keyword-only and required.

    Raises:
        ValueError: if an AUC is outside [0, 1] or not a number.
    """
    unl = 1.0 - probability(auc_unlearned, "auc_unlearned")
    ret = 1.0 - probability(auc_retain, "auc_retain")
    return (unl - ret) / (ret + PRIVLEAK_EPSILON) * 100.0


def relative_difference(score: float, reference: float) -> float:
    """``(score − reference) / reference × 100``.

    Raises:
        ValueError: if ``reference`` is 0 (the relative difference is undefined).
    """
    if reference == 0:
        raise ValueError("reference = 0: the relative difference is undefined")
    return (float(score) - float(reference)) / float(reference) * 100.0
