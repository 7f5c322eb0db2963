"""Entropy-based forget losses, kept for comparison with the margin loss.

    H(p) = −Σ_k p_k log p_k,      KL(p ‖ u) = log V − H(p)

Near the uniform distribution the gradient of both in the logits vanishes like the logit spread
divided by V, which is why PDU uses the margin loss instead (see ``tests/test_losses.py``).
"""

from __future__ import annotations

import math

import torch

from constrained_unlearn.losses.masking import masked_mean

__all__ = ["kl_to_uniform_loss", "negative_entropy_loss"]


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def negative_entropy_loss(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``−H(softmax(z))`` averaged over masked positions. Shapes: ``[..., V]``, ``[...]``."""
    return masked_mean(-_entropy(logits), mask)


def kl_to_uniform_loss(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``KL(softmax(z) ‖ uniform) = log V − H`` averaged over masked positions; ≥ 0, zero iff uniform."""
    return masked_mean(math.log(logits.shape[-1]) - _entropy(logits), mask)
