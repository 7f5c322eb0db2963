"""The membership-inference and memorisation results shared by the TOFU and MUSE evaluators.

Each evaluator knows where its texts and sequences come from (QA pairs or documents); the
scoring of one side with one attack, the AUC result and the memorisation result are the same
and live here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from constrained_unlearn.evaluation.metrics import (
    TokenStats,
    exact_memorization,
    extraction_strength,
    loss_scores,
    mia_auc,
    min_k_plus_plus_scores,
    min_k_scores,
    reference_scores,
    zlib_scores,
)
from constrained_unlearn.evaluation.report import by_index, nanmean, with_bootstrap

__all__ = ["memorization_result", "mia_result", "side_scores"]


def side_scores(
    attack: str,
    stats: TokenStats,
    k: float,
    *,
    texts: Callable[[], Sequence[str]],
    reference_nll: Callable[[], np.ndarray],
    gradnorm: Callable[[], np.ndarray],
) -> np.ndarray:
    """Per-example scores of one side (higher = less likely a member) under ``attack``.

    ``texts``, ``reference_nll`` and ``gradnorm`` are called only by the attacks that need them
    (ZLib, Reference, GradNorm). Min-K% and Min-K%++ drop the final (EOS) position.
    """
    if attack == "mia_min_k":
        return min_k_scores(stats.drop_last().log_probs, k)
    if attack == "mia_min_k_plus_plus":
        short = stats.drop_last()
        return min_k_plus_plus_scores(short.log_probs, short.mu, short.sigma, k)
    if attack == "mia_loss":
        return loss_scores(stats.log_probs)
    if attack == "mia_zlib":
        return zlib_scores(stats.log_probs, list(texts()))
    if attack == "mia_reference":
        return reference_scores(stats.mean_nll(), reference_nll())
    if attack == "mia_gradnorm":
        return gradnorm()
    raise ValueError(f"unknown attack {attack!r}")


def mia_result(scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """``{agg_value: AUC, auc, forget: {...}, holdout: {...}}`` (open-unlearning's shape)."""
    auc = mia_auc(scores["forget"], scores["holdout"])
    out: dict[str, Any] = {"agg_value": auc, "auc": auc}
    for side, s in scores.items():
        out[side] = {
            "agg_value": nanmean(s),
            "value_by_index": by_index([{"score": float(v)} for v in s]),
        }
    return out


def memorization_result(
    correct: Sequence[Any], kind: str, *, es_ou_quirk: bool, seed: int
) -> dict[str, Any]:
    """Extraction strength (``kind="es"``) or exact memorisation of teacher-forced argmaxes."""
    if kind == "es":
        values = extraction_strength(correct, ou_compat=es_ou_quirk)
    else:
        values = exact_memorization(correct)
    metric = {
        "agg_value": nanmean(values),
        "value_by_index": by_index([{"score": float(v)} for v in values]),
    }
    return with_bootstrap(metric, values, seed=seed)
