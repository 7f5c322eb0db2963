"""Classifier unlearning: the PDU formulation on class logits.

    minimise  L_f(θ) = mean over D_f of (max_k z_k − mean_k z_k)²
    s.t.      L_r(θ) = mean cross-entropy over D_r ≤ ε

Modules: `data` (digits, forget-class / forget-random splits), `model` (MLP),
`training` (original and retrained models), `terms` (the engine contract),
`evaluation` (accuracies, membership AUC) and `unlearn` ([`unlearn_classifier`][constrained_unlearn.classifier.unlearn_classifier]).
"""

from constrained_unlearn.classifier.data import (
    ClassifierSplit,
    TabularData,
    digits_split,
    forget_class_split,
    forget_random_split,
    load_digits_data,
)
from constrained_unlearn.classifier.evaluation import (
    ClassifierMetrics,
    accuracy,
    evaluate_classifier,
    loss_threshold_mia_auc,
    per_example_loss,
    predict_logits,
)
from constrained_unlearn.classifier.model import make_mlp
from constrained_unlearn.classifier.terms import ClassifierTerms
from constrained_unlearn.classifier.training import (
    train_classifier,
    train_original,
    train_retrained,
)
from constrained_unlearn.classifier.unlearn import ClassifierUnlearningResult, unlearn_classifier

__all__ = [
    "ClassifierMetrics",
    "ClassifierSplit",
    "ClassifierTerms",
    "ClassifierUnlearningResult",
    "TabularData",
    "accuracy",
    "digits_split",
    "evaluate_classifier",
    "forget_class_split",
    "forget_random_split",
    "load_digits_data",
    "loss_threshold_mia_auc",
    "make_mlp",
    "per_example_loss",
    "predict_logits",
    "train_classifier",
    "train_original",
    "train_retrained",
    "unlearn_classifier",
]
