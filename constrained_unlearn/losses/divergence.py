"""Divergences between the model's next-token distribution and a target distribution.

With ``p = softmax(z)`` the model's distribution at one position and ``q`` a target distribution
over the same vocabulary of size ``V``:

    KL(p ‖ q)  = Σ_k p_k (log p_k − log q_k)          ([`kl_to_reference`][constrained_unlearn.losses.kl_to_reference], q = p_ref)
    CE(q, p)   = −Σ_k q_k log p_k                      ([`soft_cross_entropy`][constrained_unlearn.losses.soft_cross_entropy])

Both are averaged over the positions a mask selects; masked positions contribute nothing.
"""

from __future__ import annotations

import torch

from constrained_unlearn.losses.margin import supervised_rows
from constrained_unlearn.losses.masking import masked_mean

__all__ = ["kl_to_reference", "soft_cross_entropy"]


def kl_to_reference(
    logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean forward KL ``KL(p_θ ‖ p_ref)`` over masked positions.

    Args:
        logits: ``[B, T, V]`` model logits (aligned).
        ref_logits: ``[B, T, V]`` reference logits on the same positions (no gradient).
        mask: ``[B, T]`` bool.

    Returns:
        Float32 scalar ``(1/|M|) Σ_{p∈M} Σ_k p_k (log p_k − log q_k)``, ≥ 0.
    """
    if ref_logits.shape != logits.shape:
        raise ValueError(
            f"reference logits {tuple(ref_logits.shape)} do not match model logits "
            f"{tuple(logits.shape)}: the reference must share the tokenizer/vocabulary"
        )
    log_p = torch.log_softmax(logits.float(), dim=-1)
    log_q = torch.log_softmax(ref_logits.float(), dim=-1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
    return masked_mean(per_position, mask)


def soft_cross_entropy(
    logits: torch.Tensor, target_probs: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy of the model's distribution against target distributions.

        L = (1/|M|) Σ_{p∈M} −Σ_k q_{p,k} log softmax(z_p)_k

    The gradient in the logits is ``softmax(z_p) − q_p`` per position (divided by ``|M|``); the
    targets are treated as constants (pass them detached).

    Args:
        logits: ``[B, T, V]`` (or ``[N, V]``) model logits.
        target_probs: same shape, rows summing to 1 (zeros allowed).
        mask: ``[B, T]`` (or ``[N]``) bool; ``None`` for every position.

    Returns:
        A float32 scalar.
    """
    if target_probs.shape != logits.shape:
        raise ValueError(
            f"target_probs {tuple(target_probs.shape)} must have the logits' shape "
            f"{tuple(logits.shape)}"
        )
    z = supervised_rows(logits, mask)
    q = supervised_rows(target_probs, mask).float()
    log_p = torch.log_softmax(z.float(), dim=-1)
    # q_k log p_k with q_k = 0 contributes 0 even where log p_k is -inf
    per_position = -torch.where(q > 0, q * log_p, torch.zeros_like(log_p)).sum(dim=-1)
    return per_position.mean()
