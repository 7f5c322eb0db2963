"""nuPI dual updates (Sohrabi et al. 2024): a PI controller on the multiplier.

    ξ_t = ν ξ_{t−1} + (1 − ν) g_t
    λ_{t+1} = max(0, λ_0' + η (K_i Σ_{s≤t} g_s + K_p ξ_t))          (projected)

``K_p = 0, K_i = 1, ν = 0`` is plain GDA; ``K_p > 0`` damps the oscillation of λ. The dual
optimiser is cooper's ``nuPI``; its state is keyed by constraint name in checkpoints, and its
``nuPIInitType`` enum is registered as a safe global for ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import cooper
import torch

from constrained_unlearn.problem import UnlearningProblem
from constrained_unlearn.solvers.base import Solver

__all__ = ["NuPI"]

torch.serialization.add_safe_globals([cooper.optim.nuPIInitType])


@dataclass
class NuPI(Solver):
    """GDA with a nuPI controller on λ (``kp`` proportional, ``ki`` integral gain, ``ema_nu``).

    ``step`` is [`Solver.step`][constrained_unlearn.solvers.Solver.step] (observe at θ_t → primal step → dual step on ``g(θ_t)``);
    only the dual optimiser differs: the controller above instead of SGD.
    """

    name: ClassVar[str] = "nupi"

    kp: float = 1.0
    ki: float = 1.0
    ema_nu: float = 0.0

    def validate(self) -> None:
        super().validate()
        for arg in ("kp", "ki"):
            value = getattr(self, arg)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{arg} must be a finite number ≥ 0, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{arg} must be a finite number ≥ 0, got {value}")
        if not isinstance(self.ema_nu, (int, float)) or not 0.0 <= self.ema_nu < 1.0:
            raise ValueError(f"ema_nu must be in [0, 1), got {self.ema_nu}")

    def make_dual_optimizer(self, problem: UnlearningProblem) -> torch.optim.Optimizer | None:
        params = [p for _, p in problem.named_multiplier_parameters()]
        return cooper.optim.nuPI(
            params,
            lr=self.dual_step_size,
            Kp=torch.tensor(self.kp),
            Ki=torch.tensor(self.ki),
            ema_nu=self.ema_nu,
            maximize=True,
        )
