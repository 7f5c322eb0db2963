"""Masks and masked reductions shared by every loss."""

from __future__ import annotations

import torch

__all__ = ["IGNORE_INDEX", "masked_mean", "next_token_alignment"]

IGNORE_INDEX = -100


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` over the positions where ``mask`` is true.

    ``values`` and ``mask`` have the same shape ``[...]``; ``mask=None`` means every position.
    Masked positions contribute exactly nothing, value and gradient: they are selected out
    rather than multiplied by zero, so a NaN or inf there cannot leak into the result.

    Raises:
        ValueError: if the mask selects no position (the mean is undefined).
    """
    if mask is None:
        return values.mean()
    if mask.shape != values.shape:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match values shape {tuple(values.shape)}"
        )
    mask = mask.bool()
    count = mask.sum()
    if int(count) == 0:
        raise ValueError(
            "the mask selects no position: the batch has no supervised token "
            "(check that answers were not truncated away and labels are not all -100)"
        )
    return values[mask].sum() / count


def next_token_alignment(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align causal-LM logits with the tokens they predict.

    Position ``t`` of a causal LM predicts token ``t + 1``, so the logits at ``0..T-2`` are paired
    with the labels at ``1..T-1``. A position is supervised when its *target* label is not
    ``ignore_index``; labels come from sequence lengths (prompt and padding are ``-100``), never
    from comparing ids with the pad id.

    Args:
        logits: ``[B, T, V]``.
        labels: ``[B, T]`` token ids, ``ignore_index`` on unsupervised positions.

    Returns:
        ``(logits[:, :-1], targets [B, T-1], mask [B, T-1] bool)``; ignored targets are set to 0
        so they can be gathered safely.
    """
    if logits.dim() != 3 or labels.dim() != 2 or logits.shape[:2] != labels.shape:
        raise ValueError(
            f"expected logits [B, T, V] and labels [B, T]; got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    shifted_logits = logits[:, :-1, :]
    targets = labels[:, 1:]
    mask = targets != ignore_index
    return shifted_logits, targets.masked_fill(~mask, 0), mask
