"""Negative log-likelihood of target tokens or classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from constrained_unlearn.losses.masking import masked_mean

__all__ = ["sequence_log_prob", "token_log_probs", "token_nll"]


def token_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(z)[y]`` per position, computed in float32 (differentiable).

    Shapes: logits ``[..., V]``, targets ``[...]`` → ``[...]``.
    """
    log_z = torch.logsumexp(logits.float(), dim=-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1).float()
    return picked - log_z


def token_nll(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean token cross-entropy over supervised positions.

        L = −(1/|M|) Σ_{p ∈ M} log softmax(z_p)[y_p]

    Args:
        logits: ``[B, T, V]`` (next-token aligned) or ``[B, C]``.
        targets: ``[B, T]`` or ``[B]`` integer targets (any value where ``mask`` is false).
        mask: same shape as ``targets``; ``None`` for all positions.

    Returns:
        A float32 scalar. Equals ``F.cross_entropy`` with ``ignore_index`` on the same positions.
    """
    if mask is None:
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
    if mask.shape != targets.shape:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} must equal targets shape {tuple(targets.shape)}"
        )
    mask = mask.bool()
    if not bool(mask.any()):
        masked_mean(targets.new_zeros(targets.shape, dtype=torch.float32), mask)  # raises
    # select first: masked positions then contribute nothing, not even NaN gradients
    return -token_log_probs(logits[mask], targets[mask]).mean()


def sequence_log_prob(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    normalize: bool = False,
) -> torch.Tensor:
    """Log-probability of each sequence's supervised tokens.

        log π(y|x) = Σ_{t ∈ M_b} log p(y_t | x, y_<t)      (``normalize=True`` divides by |M_b|)

    Args:
        logits: ``[B, T, V]`` next-token aligned.
        targets: ``[B, T]``.
        mask: ``[B, T]`` boolean.

    Returns:
        ``[B]`` float32.
    """
    log_probs = token_log_probs(logits, targets)
    log_probs = torch.where(mask.bool(), log_probs, torch.zeros_like(log_probs))
    total = log_probs.sum(dim=-1)
    if normalize:
        counts = mask.sum(dim=-1)
        if bool((counts == 0).any()):
            raise ValueError("a sequence has no supervised token; cannot length-normalise")
        total = total / counts
    return total
