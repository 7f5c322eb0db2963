"""Learning-rate schedules of the primal optimiser.

With W warm-up steps out of N:  f(s) = s / W for s < W, then 1 (constant),
(N − s) / (N − W) (linear) or ½(1 + cos(π (s − W) / (N − W))) (cosine).
"""

from __future__ import annotations

import math

import torch

__all__ = ["make_lr_scheduler"]


def make_lr_scheduler(
    optimizer: torch.optim.Optimizer, kind: str, total_steps: int, warmup_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` implementing the formulas above; stepped once per optimiser step."""
    warmup = int(warmup_ratio * total_steps)
    decay = max(1, total_steps - warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / decay)
        if kind == "linear":
            return 1.0 - progress
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
