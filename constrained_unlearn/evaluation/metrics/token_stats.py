"""Per-token statistics of a teacher-forced forward pass, the input of every token metric.

For one example with supervised (answer) positions t = 1..T, next-token aligned:

    log p(y_t)  = log softmax(z_t)[y_t]                                  log-probability of target
    μ_t         = Σ_v p_t(v) log p_t(v)                                  (= −entropy of p_t)
    σ_t²        = max(Σ_v p_t(v) log² p_t(v) − μ_t², 1e-6)               Min-K%++ statistics
    correct_t   = 1[argmax_v z_t(v) = y_t]                               greedy prediction hit

Examples have different answer lengths, so every field is a list of 1-D tensors, one per
example, holding only the supervised positions (in order). Which positions a metric uses is the
metric's business: LOSS / ZLib / probability / truth ratio use all answer tokens including EOS;
Min-K%, Min-K%++, GradNorm, ES and EM drop the final EOS position (``TokenStats.drop_last``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SIGMA_SQUARED_MIN", "TokenStats", "mean_nll", "row_statistics", "token_statistics"]

SIGMA_SQUARED_MIN = 1e-6


@dataclass(frozen=True)
class TokenStats:
    """Ragged per-example token statistics (float32 / bool CPU tensors, each of shape ``[T_b]``).

    Attributes:
        log_probs: ``log p(y_t)`` per supervised position.
        mu: ``μ_t``, the expected log-probability under ``p_t``.
        sigma: ``σ_t``, its standard deviation (σ² floored at 1e-6).
        correct: ``argmax z_t == y_t``.
    """

    log_probs: list[torch.Tensor]
    mu: list[torch.Tensor]
    sigma: list[torch.Tensor]
    correct: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.log_probs)

    def lengths(self) -> list[int]:
        """Number of supervised positions of each example."""
        return [int(lp.numel()) for lp in self.log_probs]

    def drop_last(self) -> TokenStats:
        """The same statistics without each example's final position (the EOS): T' = T − 1."""
        return TokenStats(
            log_probs=[x[:-1] for x in self.log_probs],
            mu=[x[:-1] for x in self.mu],
            sigma=[x[:-1] for x in self.sigma],
            correct=[x[:-1] for x in self.correct],
        )

    def mean_nll(self) -> np.ndarray:
        """``ℓ̄_b = −(1/T_b) Σ_t log p(y_t)`` per example, ``[B]`` float64 (see [`mean_nll`][constrained_unlearn.evaluation.metrics.mean_nll])."""
        return mean_nll(self.log_probs)


def mean_nll(log_probs: list[torch.Tensor]) -> np.ndarray:
    """Average negative log-likelihood of each example: ``ℓ̄_b = −(1/T_b) Σ_t log p(y_t)``.

    Args:
        log_probs: one 1-D tensor ``[T_b]`` of target log-probabilities per example.

    Returns:
        ``[B]`` float64.

    Raises:
        ValueError: if an example has no token (its mean is undefined), naming its index.
    """
    out = np.empty(len(log_probs), dtype=np.float64)
    for i, lp in enumerate(log_probs):
        if lp.numel() == 0:
            raise ValueError(
                f"example {i} has no supervised token, so its mean NLL is undefined; "
                "check that its answer was not truncated away"
            )
        out[i] = -float(lp.double().mean())
    return out


def token_statistics(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> TokenStats:
    """Per-token statistics of next-token-aligned logits (see the module docstring).

    Args:
        logits: ``[B, T, V]``, position t already scores ``targets[:, t]`` (use
            ``constrained_unlearn.losses.next_token_alignment`` on raw causal-LM outputs).
        targets: ``[B, T]`` integer token ids (any valid id where ``mask`` is false).
        mask: ``[B, T]`` bool, true on supervised positions; built from lengths, never from
            comparing ids with the pad id.

    Returns:
        [`TokenStats`][constrained_unlearn.evaluation.metrics.TokenStats], computed in float32 without gradients and moved to the CPU.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, T, V]; got shape {tuple(logits.shape)}")
    if targets.shape != logits.shape[:2] or mask.shape != logits.shape[:2]:
        raise ValueError(
            f"targets {tuple(targets.shape)} and mask {tuple(mask.shape)} must both be "
            f"[B, T] = {tuple(logits.shape[:2])} to match logits"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor; got {mask.dtype} (use mask.bool())")
    # Only the supervised positions are scored: [N, V] with N = mask.sum(), which keeps the
    # float32 copies small when prompts are long or the batch is padded.
    return row_statistics(logits.detach()[mask], targets[mask], mask.sum(dim=1).tolist())


def row_statistics(logits: torch.Tensor, targets: torch.Tensor, sizes: list[int]) -> TokenStats:
    """The statistics of `token_statistics` from the supervised rows alone.

    Args:
        logits: ``[N, V]``, the logits of the N supervised positions of all examples, example
            after example.
        targets: ``[N]`` their target ids.
        sizes: positions per example (sums to N).
    """
    if logits.dim() != 2 or targets.shape != logits.shape[:1] or sum(sizes) != logits.shape[0]:
        raise ValueError(
            f"expected logits [N, V], targets [N] and sizes summing to N; got "
            f"{tuple(logits.shape)}, {tuple(targets.shape)} and sum {sum(sizes)}"
        )
    with torch.no_grad():
        picked = logits.detach().float()  # [N, V]
        picked_targets = targets.long()  # [N]
        log_p = torch.log_softmax(picked, dim=-1)
        p = log_p.exp()
        # p·log p and p·log² p with 0·(−inf) := 0 (a −inf logit has probability zero).
        p_log_p = torch.where(p > 0, p * log_p, 0.0)
        mu = p_log_p.sum(-1)  # [N]
        # σ² = E[(log p − μ)²], centred: E[log² p] − μ² cancels catastrophically in float32
        # near uniform outputs (μ² ≈ 36 against σ² ≈ 0.01)
        centered = torch.where(p > 0, log_p - mu.unsqueeze(-1), 0.0)
        variance = (p * centered.square()).sum(-1)
        sigma = variance.clamp_min(SIGMA_SQUARED_MIN).sqrt()
        target_lp = log_p.gather(-1, picked_targets.unsqueeze(-1)).squeeze(-1)
        correct = picked.argmax(-1) == picked_targets
    return TokenStats(
        log_probs=[x.cpu() for x in target_lp.split(sizes)],
        mu=[x.cpu() for x in mu.split(sizes)],
        sigma=[x.cpu() for x in sigma.split(sizes)],
        correct=[x.cpu() for x in correct.split(sizes)],
    )
