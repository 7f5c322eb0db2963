"""Unlearning terms of a classifier: the engine's ``terms_fn``, same formulation as the LLM.

Batches are ``(x [B, D], y [B])`` pairs (torch's default collate of ``TensorDataset`` items).
With ``z = f_θ(x) ∈ R^{B×C}`` the class logits:

    objective  L_f = (1/B_f) Σ_{i∈forget batch} (max_k z_{i,k} − mean_k z_{i,k})²
    "retain"   L_r = −(1/B_r) Σ_{i∈retain batch} log softmax(z_i)[y_i]

``L_f`` is zero exactly when the prediction on a forget example is uniform over the C classes;
the labels of the forget batch are not used. For class forgetting the objective can instead be
restricted to a support ``S`` (the retained classes, see
[`support_margin_loss`][constrained_unlearn.losses.support_margin_loss]):

    objective  L_f = (1/B_f) Σ_i [ m_S(z_i)² + max(0, max_{k∉S} z_{i,k} − μ_S(z_i) + gap)² ]

which flattens over the retained classes and pushes the forgotten ones ``gap`` below them. Forget and retain batches run through the model in
one forward pass (the model must treat examples independently: no batch norm in train mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from constrained_unlearn.engine.terms import Terms
from constrained_unlearn.losses import margin_flattening_loss, support_margin_loss, token_nll
from constrained_unlearn.losses.margin import check_support

__all__ = ["ClassifierTerms"]

Batch = Sequence[torch.Tensor]


def _unpack(batch: Batch, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (list, tuple)) or len(batch) != 2:
        raise TypeError(
            f"the {name} batch must be an (x [B, D], y [B]) pair as collated from a "
            f"TensorDataset(x, y), got {type(batch).__name__}"
        )
    x, y = batch
    if len(x) != len(y):
        raise ValueError(f"the {name} batch has {len(x)} inputs but {len(y)} labels")
    return x, y


class ClassifierTerms:
    """``(model, forget_batch, retain_batch) -> Terms`` for class-logit models.

    Returns ``Terms(objective=L_f, constraints={"retain": L_r}, metrics=...)`` where the
    metrics (detached, for logging) are ``forget_margin`` (mean ``max − mean`` logit on the
    forget batch) and ``forget_acc`` (accuracy on the forget batch).

    Args:
        support: ``[C]`` boolean, the classes the forget output is flattened over; ``None``
            (default) flattens over every class.
        gap: with a ``support``, how far the excluded classes' logits must sit below the
            support's mean logit.
    """

    constraint_name = "retain"

    def __init__(self, support: torch.Tensor | None = None, gap: float = 5.0) -> None:
        if support is not None:
            check_support(support, support.numel() if isinstance(support, torch.Tensor) else 0, gap)
        self.support = support
        self.gap = gap

    def __call__(self, model: nn.Module, forget_batch: Batch, retain_batch: Batch) -> Terms:
        x_f, y_f = _unpack(forget_batch, "forget")
        x_r, y_r = _unpack(retain_batch, "retain")
        logits = model(torch.cat([x_f, x_r]))
        if logits.dim() != 2:
            raise ValueError(
                f"the model must return class logits [B, C], got {tuple(logits.shape)}"
            )
        z_f, z_r = logits[: len(x_f)], logits[len(x_f) :]
        if self.support is None:
            objective = margin_flattening_loss(z_f)
        else:
            objective = support_margin_loss(z_f, self.support, gap=self.gap)
        retain = token_nll(z_r, y_r)
        with torch.no_grad():
            margin = (z_f.max(dim=-1).values - z_f.mean(dim=-1)).mean()
            accuracy = (z_f.argmax(dim=-1) == y_f).float().mean()
        return Terms(
            objective=objective,
            constraints={self.constraint_name: retain},
            metrics={"forget_margin": float(margin), "forget_acc": float(accuracy)},
        )
