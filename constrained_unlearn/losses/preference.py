"""Preference-style forget losses (NPO, SimNPO) on sequence log-probabilities.

Reference log-probabilities are passed in: these functions never run a model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
