"""The logit-margin flattening loss (PDU's forget objective).

For one position with logits ``z ∈ R^V``:

    m(z) = max_k z_k − (1/V) Σ_k z_k          (the margin, ≥ 0)
    ℓ(z) = m(z)²

``ℓ`` is zero exactly when every logit is equal, i.e. when the softmax is uniform. It uses no
softmax, so it stays finite in bf16 for logits of any representable size. Its gradient in ``z``
is ``2 m(z) (e_argmax − 1/V)``, of norm ``2 m(z) sqrt(1 − 1/V)`` ≈ 2·margin: it neither saturates
when the output is peaked nor shrinks with the vocabulary near uniform, unlike the entropy.
"""

from __future__ import annotations

import math

import torch

from constrained_unlearn.losses.masking import masked_mean

__all__ = [
    "check_support",
    "margin_flattening_loss",
    "margin_per_position",
    "supervised_rows",
    "support_margin_loss",
    "support_margin_per_position",
]


def margin_per_position(logits: torch.Tensor) -> torch.Tensor:
    """Margin ``max_k z_k − mean_k z_k`` for every position.

    Args:
        logits: ``[..., V]`` in any float dtype.

    Returns:
        ``[...]`` float32 margins. The reductions run in the input dtype with float32
        accumulation (torch's default for half types); the result is upcast before squaring so
        that ``m² `` cannot overflow bf16/fp16.
    """
    if logits.dim() < 1 or logits.shape[-1] < 2:
        raise ValueError(f"logits need a last dimension of size ≥ 2, got {tuple(logits.shape)}")
    top = logits.max(dim=-1).values.float()
    mean = logits.mean(dim=-1, dtype=torch.float32)
    return top - mean


def margin_flattening_loss(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared logit margin over the supervised positions.

        L = (1/|M|) Σ_{p ∈ M} (max_k z_{p,k} − mean_k z_{p,k})²

    Args:
        logits: ``[B, T, V]`` token logits (already next-token aligned, see
            [`next_token_alignment`][constrained_unlearn.losses.next_token_alignment]) or ``[B, C]`` class logits.
        mask: ``[B, T]`` (or ``[B]``) boolean, true on positions that count; ``None`` for all.

    Returns:
        A float32 scalar.
    """
    return (margin_per_position(supervised_rows(logits, mask)) ** 2).mean()


def supervised_rows(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The logits of the positions ``mask`` selects: ``[B, T, V]``, ``[B, T]`` → ``[N, V]``.

    Selecting *before* computing a loss means unsupervised positions contribute nothing at all,
    not even a NaN gradient from a poisoned (e.g. padding) row. ``mask=None`` returns
    ``logits`` unchanged.
    """
    if mask is None:
        return logits
    if mask.shape != logits.shape[:-1]:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match logits {tuple(logits.shape)} "
            "without the last dimension"
        )
    selected = logits[mask.bool()]
    if selected.shape[0] == 0:
        masked_mean(logits.new_zeros(mask.shape), mask)  # raises the "selects no position" error
    return selected


def check_support(support: torch.Tensor, num_classes: int, gap: float) -> torch.Tensor:
    """Validate a support mask ``[V]`` and a gap; errors name the argument and the fix."""
    if not isinstance(support, torch.Tensor) or support.dtype != torch.bool:
        raise TypeError(
            "support must be a boolean tensor [V], true on the classes the output is flattened "
            f"over; got {type(support).__name__}"
            + (f" of dtype {support.dtype}" if isinstance(support, torch.Tensor) else "")
        )
    if support.shape != (num_classes,):
        raise ValueError(
            f"support has shape {tuple(support.shape)} but the logits have {num_classes} classes; "
            f"give one flag per class, shape [{num_classes}]"
        )
    if not bool(support.any()):
        raise ValueError("support selects no class; keep at least one class in the support")
    if not (isinstance(gap, (int, float)) and math.isfinite(gap) and gap >= 0):
        raise ValueError(f"gap must be a finite number ≥ 0, got {gap!r}")
    return support


def support_margin_per_position(
    logits: torch.Tensor, support: torch.Tensor, gap: float = 5.0
) -> torch.Tensor:
    """Per-position loss of flattening over a class subset ``S`` and pushing the rest below it.

    With ``S`` the support (the classes the output may still spread over) and ``μ_S(z)`` the
    mean logit over ``S``:

        m_S(z) = max_{k∈S} z_k − μ_S(z)                       (margin inside the support)
        h(z)   = max(0, max_{k∉S} z_k − μ_S(z) + gap)          (excluded logits not gap below)
        ℓ(z)   = m_S(z)² + h(z)²

    ``ℓ`` is zero exactly when the logits are equal on ``S`` and every excluded logit is at
    least ``gap`` below them: the softmax is uniform over ``S`` and gives each excluded class at
    most ``e^{−gap}`` times the mass of a supported one. With ``S`` = every class it is the
    margin loss ``m(z)²``. This is the forget target of *class* forgetting: a model retrained
    without class ``c`` spreads its prediction on a ``c`` example over the other classes and
    gives ``c`` almost nothing; flattening over every class would instead give ``c`` a share
    ``1/V`` and leave top-1 accuracy on ``c`` at chance.

    Args:
        logits: ``[..., V]`` in any float dtype.
        support: ``[V]`` boolean, true on the classes of ``S`` (at least one).
        gap: the required distance ``≥ 0`` of the excluded logits below ``μ_S``.

    Returns:
        ``[...]`` float32 losses ``ℓ``.
    """
    if logits.dim() < 1 or logits.shape[-1] < 2:
        raise ValueError(f"logits need a last dimension of size ≥ 2, got {tuple(logits.shape)}")
    support = check_support(support, logits.shape[-1], gap).to(logits.device)
    kept = logits[..., support]
    mean = kept.mean(dim=-1, dtype=torch.float32)
    inside = kept.max(dim=-1).values.float() - mean
    loss = inside**2
    if not bool(support.all()):
        excluded = logits[..., ~support].max(dim=-1).values.float()
        loss = loss + torch.relu(excluded - mean + gap) ** 2
    return loss


def support_margin_loss(
    logits: torch.Tensor,
    support: torch.Tensor,
    mask: torch.Tensor | None = None,
    gap: float = 5.0,
) -> torch.Tensor:
    """Mean of [`support_margin_per_position`][constrained_unlearn.losses.support_margin_per_position] over the supervised positions.

        L = (1/|M|) Σ_{p ∈ M} [ m_S(z_p)² + max(0, max_{k∉S} z_{p,k} − μ_S(z_p) + gap)² ]

    Args:
        logits: ``[B, C]`` class logits or ``[B, T, V]`` token logits.
        support: ``[V]`` boolean, true on the classes the output is flattened over.
        mask: ``[B]`` / ``[B, T]`` boolean, true on positions that count; ``None`` for all.
        gap: distance ``≥ 0`` the excluded logits must keep below the support's mean.

    Returns:
        A float32 scalar.
    """
    return support_margin_per_position(supervised_rows(logits, mask), support, gap).mean()
