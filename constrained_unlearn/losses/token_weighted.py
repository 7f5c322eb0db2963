"""Token-level forget losses of the recent unlearning methods (pure functions of logits).

Notation, for one aligned answer position ``p`` with logits ``z_p ∈ R^V`` and target token
``y_p``: ``π_p = softmax(z_p)_{y_p}`` the probability of the target, ``sg(·)`` stop-gradient,
``M`` the supervised positions, ``e_y`` the one-hot vector of ``y``.

    WGA     L = (1/|M|) Σ_p sg(π_p^β) · log π_p                     (Wang et al. 2025)
    SatImp  L = (1/|M|) Σ_p sg(π_p^{β₁} (1 − π_p)^{β₂}) · log π_p     (Yang et al. 2025)
    CE-U    L = (1/|M|) Σ_p CE(softmax(sg(z_p) − ∞·e_{y_p}), softmax(z_p))   (Yang et al. 2025)
    UNDIAL  L = (1/|M|) Σ_p CE(softmax(z_p^ref − β e_{y_p}), softmax(z_p))   (Dong et al. 2024)

WGA and SatImp are gradient ascent (``log π`` is minimised) with per-token weights; CE-U and
UNDIAL are distillations toward a target distribution that takes mass off the answer token.
"""

from __future__ import annotations

import torch

from constrained_unlearn.losses.divergence import soft_cross_entropy
from constrained_unlearn.losses.margin import supervised_rows
from constrained_unlearn.losses.nll import token_log_probs

__all__ = [
    "ceu_loss",
    "ceu_targets",
    "satimp_loss",
    "undial_loss",
    "undial_targets",
    "weighted_ascent_loss",
    "wga_loss",
]


def _check_exponent(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number ≥ 0, got {value!r}")


def _select(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``[N, V]`` and targets ``[N]`` of the supervised positions (selected first: the
    ``[B, T, V]`` targets of the distillation losses are never built)."""
    if targets.shape != mask.shape:
        raise ValueError(f"targets {tuple(targets.shape)} and mask {tuple(mask.shape)} differ")
    return supervised_rows(logits, mask), targets[mask.bool()]


def weighted_ascent_loss(
    log_probs: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``(1/|M|) Σ_{p∈M} sg(w_p) log π_p``: weighted gradient ascent on the target tokens.

    Args:
        log_probs: ``[B, T]`` ``log π_p`` (differentiable).
        weights: ``[B, T]`` token weights (detached here).
        mask: ``[B, T]`` bool, the positions that count.
    """
    if not (log_probs.shape == weights.shape == mask.shape):
        raise ValueError(
            f"log_probs {tuple(log_probs.shape)}, weights {tuple(weights.shape)} and mask "
            f"{tuple(mask.shape)} must have one shape"
        )
    mask = mask.bool()
    if not bool(mask.any()):
        raise ValueError("the mask selects no position: the batch has no supervised token")
    return (weights.detach()[mask] * log_probs[mask]).mean()


def wga_loss(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """Weighted gradient ascent (Wang et al. 2025, arXiv 2502.19301).

        L = (1/|M|) Σ_{p∈M} sg(π_p^β) log π_p

    Tokens the model already finds unlikely (small ``π``) get small weights, so the ascent
    stops pushing on them. ``β = 0`` is plain gradient ascent ``−NLL``.

    Args:
        logits: ``[B, T, V]`` aligned logits; targets ``[B, T]``; mask ``[B, T]`` bool.
        beta: the exponent β ≥ 0.
    """
    _check_exponent("beta", beta)
    log_probs = token_log_probs(logits, targets)
    weights = log_probs.detach().exp() ** beta
    return weighted_ascent_loss(log_probs, weights, mask)


def satimp_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    beta1: float = 5.0,
    beta2: float = 1.0,
) -> torch.Tensor:
    """SatImp (Yang et al. 2025, "Exploring Criteria of Loss Reweighting to Enhance LLM
    Unlearning", arXiv 2505.11953): saturation × importance token weights.

        L = (1/|M|) Σ_{p∈M} sg(π_p^{β₁} (1 − π_p)^{β₂}) log π_p

    ``π^{β₁}`` (saturation) lowers the weight of tokens already unlikely; ``(1 − π)^{β₂}``
    (importance) lowers the weight of tokens the model is sure of.

    Args:
        logits: ``[B, T, V]`` aligned logits; targets ``[B, T]``; mask ``[B, T]`` bool.
        beta1: saturation exponent β₁ ≥ 0; beta2: importance exponent β₂ ≥ 0.
    """
    _check_exponent("beta1", beta1)
    _check_exponent("beta2", beta2)
    log_probs = token_log_probs(logits, targets)
    prob = log_probs.detach().exp()
    weights = prob**beta1 * (1.0 - prob) ** beta2
    return weighted_ascent_loss(log_probs, weights, mask)


def ceu_targets(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """CE-U's target ``q = softmax(sg(z) − ∞·e_y)``: the model's own distribution with the
    answer token removed and the rest renormalised. Shapes ``[..., V]``, ``[...]`` → ``[..., V]``."""
    z = logits.detach().float().clone()
    z.scatter_(-1, targets.unsqueeze(-1), float("-inf"))
    return torch.softmax(z, dim=-1)


def ceu_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy unlearning (Yang et al. 2025, "CE-U: Cross Entropy Unlearning",
    arXiv 2503.01224).

        L = (1/|M|) Σ_{p∈M} −Σ_{k≠y_p} q_{p,k} log softmax(z_p)_k,
        q_p = softmax(sg(z_p) − ∞·e_{y_p})

    Its gradient in ``z_p`` is ``softmax(z_p) − q_p``: bounded (unlike gradient ascent), it
    moves the answer token's mass onto the other tokens in proportion to their current mass.

    Args:
        logits: ``[B, T, V]`` aligned logits (V ≥ 2); targets ``[B, T]``; mask ``[B, T]`` bool.
    """
    if logits.shape[-1] < 2:
        raise ValueError("CE-U needs a vocabulary of at least 2 tokens")
    z, y = _select(logits, targets, mask)
    return soft_cross_entropy(z, ceu_targets(z, y))


def undial_targets(ref_logits: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    """UNDIAL's adjusted target ``softmax(z_ref − β e_y)``. Shapes ``[..., V]``, ``[...]``."""
    _check_exponent("beta", beta)
    z = ref_logits.detach().float().clone()
    z.scatter_add_(-1, targets.unsqueeze(-1), torch.full_like(z[..., :1], -float(beta)))
    return torch.softmax(z, dim=-1)


def undial_loss(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    beta: float = 10.0,
) -> torch.Tensor:
    """UNDIAL (Dong et al. 2024, "UNDIAL: Self-Distillation with Adjusted Logits for Robust
    Unlearning in Large Language Models", arXiv 2402.10052).

        L = (1/|M|) Σ_{p∈M} −Σ_k q_{p,k} log softmax(z_p)_k,   q_p = softmax(z_p^ref − β e_{y_p})

    Self-distillation toward the frozen starting model's distribution with the answer token's
    logit lowered by β: a fixed, well-posed target (the loss is bounded below by the entropy
    of ``q``) instead of an unbounded ascent.

    Args:
        logits: ``[B, T, V]`` aligned model logits; ref_logits: the same under θ_ref.
        targets: ``[B, T]``; mask: ``[B, T]`` bool; beta: the logit reduction β ≥ 0.
    """
    if ref_logits.shape != logits.shape:
        raise ValueError(
            f"reference logits {tuple(ref_logits.shape)} do not match model logits "
            f"{tuple(logits.shape)}: the reference must share the tokenizer/vocabulary"
        )
    z, y = _select(logits, targets, mask)
    return soft_cross_entropy(z, undial_targets(supervised_rows(ref_logits, mask), y, beta))
