"""Preference-style forget losses (NPO, SimNPO, DPO) on sequence log-probabilities.

Reference log-probabilities are passed in: these functions never run a model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["dpo_loss", "npo_loss", "simnpo_loss"]


def npo_loss(log_prob: torch.Tensor, ref_log_prob: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Negative Preference Optimisation (Zhang et al. 2024, arXiv 2404.05868).

        L = −(2/β) · mean_b log σ(−β (log π_θ(y_b|x_b) − log π_ref(y_b|x_b)))

    Args:
        log_prob: ``[B]`` sequence log-probabilities under the model.
        ref_log_prob: ``[B]`` the same under the frozen reference model.
        beta: inverse temperature, > 0.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    log_ratio = log_prob - ref_log_prob.detach()
    return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()


def simnpo_loss(avg_log_prob: torch.Tensor, beta: float = 2.5, gamma: float = 0.0) -> torch.Tensor:
    """SimNPO (Fan et al. 2024, arXiv 2410.07163): reference-free, length-normalised NPO.

        L = −(2/β) · mean_b log σ(−β · (1/|y_b|) log π_θ(y_b|x_b) − γ)

    Args:
        avg_log_prob: ``[B]`` length-normalised sequence log-probabilities.
        beta: inverse temperature, > 0.
        gamma: reward margin, ≥ 0.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return -(2.0 / beta) * F.logsigmoid(-beta * avg_log_prob - gamma).mean()


def dpo_loss(
    chosen_log_prob: torch.Tensor,
    rejected_log_prob: torch.Tensor,
    ref_chosen_log_prob: torch.Tensor,
    ref_rejected_log_prob: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """DPO (Rafailov et al. 2023, arXiv 2305.18290) scaled by ``2/β`` as in open-unlearning.

        L = −(2/β) · mean_b log σ(β [(c_b − c_b^ref) − (r_b − r_b^ref)])

    Same minimiser as DPO; at θ = θ_ref it equals ``(2/β) log 2``, like NPO.

    Args:
        chosen_log_prob: ``[B]`` log-probabilities of the preferred answers under θ.
        rejected_log_prob: ``[B]`` log-probabilities of the rejected (forget) answers under θ.
        ref_chosen_log_prob: ``[B]`` the preferred answers under θ_ref (detached).
        ref_rejected_log_prob: ``[B]`` the rejected answers under θ_ref (detached).
        beta: inverse temperature β > 0.

    Returns:
        A float32 scalar ≥ 0.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    shapes = {
        tuple(t.shape)
        for t in (chosen_log_prob, rejected_log_prob, ref_chosen_log_prob, ref_rejected_log_prob)
    }
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"dpo_loss needs four [B] tensors of one shape, got {sorted(shapes)}")
    margin = (chosen_log_prob - ref_chosen_log_prob.detach()) - (
        rejected_log_prob - ref_rejected_log_prob.detach()
    )
    return -(2.0 / beta) * F.logsigmoid(beta * margin.float()).mean()
