"""Evaluation of an unlearned classifier: accuracies and a loss-threshold membership attack.

Every metric runs the model in eval mode without gradients. With ``ℓ_i = −log softmax(f(x_i))[y_i]``
the per-example cross-entropy:

* accuracy on a set S: ``(1/|S|) Σ_{i∈S} 1[argmax_k f(x_i)_k = y_i]``;
* membership-inference AUC (loss-threshold attack, Yeom et al. 2018): the attack scores an
  example by ``−ℓ_i`` (lower loss ⇒ "was trained on"). Members are the forget examples ``D_f``,
  non-members are held-out test examples from the same distribution (for class forgetting: the
  test examples of the forgotten class; for random forgetting: the whole test set). The AUC is

      AUC = P(ℓ_nonmember > ℓ_member) + ½ P(ℓ_nonmember = ℓ_member)

  (the rank-based Mann–Whitney AUC of [`constrained_unlearn.evaluation.metrics.mia.mia_auc`][constrained_unlearn.evaluation.metrics.mia_auc]
  with the forget losses as its forget scores and the held-out losses as its holdout scores —
  the one AUC of the library; it equals ``sklearn.metrics.roc_auc_score`` with label 1 for
  members and score ``−ℓ``). 0.5: the forget
  examples look exactly like unseen data (the retrained model's value, up to noise); > 0.5: they
  still look trained on; < 0.5: they have *higher* loss than unseen data — over-forgetting,
  itself a membership signal (the Streisand effect).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from constrained_unlearn.classifier.data import ClassifierSplit
from constrained_unlearn.evaluation.metrics.mia import mia_auc

__all__ = [
    "ClassifierMetrics",
    "accuracy",
    "evaluate_classifier",
    "loss_threshold_mia_auc",
    "per_example_loss",
    "predict_logits",
]


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """``[N, C]`` float32 logits of ``x [N, D]`` in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        parts = [
            model(x[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, len(x), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x [N, D]`` whose argmax logit equals ``y [N]``; needs N ≥ 1."""
    if len(y) == 0:
        raise ValueError("accuracy of an empty set is undefined; pass at least one example")
    return float((predict_logits(model, x).argmax(dim=-1) == y).float().mean())


def per_example_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[N]`` cross-entropy ``ℓ_i = −log softmax(f(x_i))[y_i]`` (float32)."""
    return F.cross_entropy(predict_logits(model, x), y, reduction="none")


def loss_threshold_mia_auc(member_losses: torch.Tensor, nonmember_losses: torch.Tensor) -> float:
    """AUC of the loss-threshold attack: ``P(ℓ_nonmember > ℓ_member) + ½ P(tie)``.

    Args:
        member_losses: ``[N_m]`` per-example losses of the (claimed) training members.
        nonmember_losses: ``[N_n]`` per-example losses of held-out examples.
    """
    if len(member_losses) == 0 or len(nonmember_losses) == 0:
        raise ValueError(
            f"the attack needs members and non-members, got {len(member_losses)} and "
            f"{len(nonmember_losses)}"
        )
    # mia_auc orients scores "higher = less likely a member": the loss itself
    return mia_auc(member_losses.double().numpy(), nonmember_losses.double().numpy())


@dataclass(frozen=True)
class ClassifierMetrics:
    """What [`evaluate_classifier`][constrained_unlearn.classifier.evaluate_classifier] measures (accuracies in [0, 1]).

    Attributes:
        forget_acc: accuracy on D_f.
        retain_acc: accuracy on D_r.
        test_acc: accuracy on the whole test set.
        test_acc_other: class forgetting only — accuracy on the test examples of the other
            classes (``None`` for random forgetting).
        test_acc_forget_class: class forgetting only — accuracy on the test examples of the
            forgotten class (``None`` for random forgetting).
        mia_auc: loss-threshold membership AUC, D_f vs matched test examples (see module doc).
        retain_loss: mean cross-entropy on the full D_r (the constrained quantity).
        forget_loss: mean cross-entropy on D_f.
    """

    forget_acc: float
    retain_acc: float
    test_acc: float
    test_acc_other: float | None
    test_acc_forget_class: float | None
    mia_auc: float
    retain_loss: float
    forget_loss: float

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def evaluate_classifier(model: nn.Module, split: ClassifierSplit) -> ClassifierMetrics:
    """Accuracies, retain/forget loss and MIA AUC of ``model`` on ``split``."""
    forget_losses = per_example_loss(model, split.x_forget, split.y_forget)
    retain_losses = per_example_loss(model, split.x_retain, split.y_retain)
    matched = split.test_forget_mask
    test_losses = per_example_loss(model, split.x_test[matched], split.y_test[matched])
    other = forget_cls = None
    if split.forget_class is not None:
        keep = ~matched
        other = accuracy(model, split.x_test[keep], split.y_test[keep])
        forget_cls = accuracy(model, split.x_test[matched], split.y_test[matched])
    return ClassifierMetrics(
        forget_acc=accuracy(model, split.x_forget, split.y_forget),
        retain_acc=accuracy(model, split.x_retain, split.y_retain),
        test_acc=accuracy(model, split.x_test, split.y_test),
        test_acc_other=other,
        test_acc_forget_class=forget_cls,
        mia_auc=loss_threshold_mia_auc(forget_losses, test_losses),
        retain_loss=float(retain_losses.mean()),
        forget_loss=float(forget_losses.mean()),
    )
