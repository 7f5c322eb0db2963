"""TOFU / MUSE metrics as pure functions: no model loading, no data loading.

Every function documents its formula and shapes; per-example inputs are lists / 1-D arrays in
example order, per-example outputs are float64 numpy arrays. See
``/work/shared/reference/metrics.md`` for the specification and the conventions.
"""

from constrained_unlearn.evaluation.metrics.bootstrap import bootstrap_ci
from constrained_unlearn.evaluation.metrics.conventions import (
    Convention,
    ConventionSettings,
    convention_settings,
    parse_convention,
)
from constrained_unlearn.evaluation.metrics.forget_quality import (
    ForgetQuality,
    forget_quality,
    separation_floor,
    separation_floor_log10,
)
from constrained_unlearn.evaluation.metrics.memorization import (
    exact_memorization,
    extraction_strength,
)
from constrained_unlearn.evaluation.metrics.mia import (
    gradnorm_scores,
    loss_scores,
    mia_auc,
    min_k_plus_plus_scores,
    min_k_scores,
    reference_scores,
    roc_auc,
    zlib_scores,
)
from constrained_unlearn.evaluation.metrics.muse import (
    KNOWMEM_STOP_STRINGS,
    MUSE_RETRAIN_MIN_K_AUC,
    build_knowmem_prompt,
    cut_knowmem_answer,
    knowmem_scores,
    muse_privleak,
    truncate_reference,
    verbmem_scores,
)
from constrained_unlearn.evaluation.metrics.privacy import relative_difference, tofu_privleak
from constrained_unlearn.evaluation.metrics.probability import (
    normalized_probability,
    option_normalized_probability,
)
from constrained_unlearn.evaluation.metrics.rouge import (
    RougeScores,
    rouge_l_f1,
    rouge_l_recall,
    rouge_scores,
)
from constrained_unlearn.evaluation.metrics.token_stats import (
    TokenStats,
    mean_nll,
    token_statistics,
)
from constrained_unlearn.evaluation.metrics.truth_ratio import aggregate_truth_ratio, truth_ratios
from constrained_unlearn.evaluation.metrics.utility import (
    MODEL_UTILITY_COMPONENTS,
    harmonic_mean,
    model_utility,
)

__all__ = [
    "KNOWMEM_STOP_STRINGS",
    "MODEL_UTILITY_COMPONENTS",
    "MUSE_RETRAIN_MIN_K_AUC",
    "Convention",
    "ConventionSettings",
    "ForgetQuality",
    "RougeScores",
    "TokenStats",
    "aggregate_truth_ratio",
    "bootstrap_ci",
    "build_knowmem_prompt",
    "convention_settings",
    "cut_knowmem_answer",
    "exact_memorization",
    "extraction_strength",
    "forget_quality",
    "gradnorm_scores",
    "harmonic_mean",
    "knowmem_scores",
    "loss_scores",
    "mean_nll",
    "mia_auc",
    "min_k_plus_plus_scores",
    "min_k_scores",
    "model_utility",
    "muse_privleak",
    "normalized_probability",
    "option_normalized_probability",
    "parse_convention",
    "reference_scores",
    "relative_difference",
    "roc_auc",
    "rouge_l_f1",
    "rouge_l_recall",
    "rouge_scores",
    "separation_floor",
    "separation_floor_log10",
    "tofu_privleak",
    "token_statistics",
    "truncate_reference",
    "truth_ratios",
    "verbmem_scores",
    "zlib_scores",
]
