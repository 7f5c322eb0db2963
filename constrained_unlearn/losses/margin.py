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

import torch

from constrained_unlearn.losses.masking import masked_mean


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
            :func:`~constrained_unlearn.losses.next_token_alignment`) or ``[B, C]`` class logits.
        mask: ``[B, T]`` (or ``[B]``) boolean, true on positions that count; ``None`` for all.

    Returns:
        A float32 scalar.
    """
    if mask is None:
        return (margin_per_position(logits) ** 2).mean()
    if mask.shape != logits.shape[:-1]:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match logits {tuple(logits.shape)} "
            "without the last dimension"
        )
    # Select before computing: unsupervised positions then contribute nothing at all, not even
    # a NaN gradient from a poisoned (e.g. padding) row.
    selected = logits[mask.bool()]
    if selected.shape[0] == 0:
        masked_mean(logits.new_zeros(mask.shape), mask)  # raises the "selects no position" error
    return (margin_per_position(selected) ** 2).mean()
