"""Fixed penalty: the multiplier never moves (the scalarised baselines).

    min_θ  L_f(θ) + λ₀ · (c(θ) − ε)

has the same gradient as ``L_f + λ₀ c``: GradDiff with weight λ₀, NPO + retain NLL, and so on.
Running baselines through this solver makes them comparable with PDU step for step. It accepts
the shared dual hyper-parameters (``dual_lr``, warm-up, cadence) and has no use for them, so the
same ``solver_kwargs`` run under every solver name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from constrained_unlearn.problem import UnlearningProblem
from constrained_unlearn.solvers.base import MicroBatches, Primitives, Solver, StepResult

__all__ = ["Penalty"]


@dataclass
class Penalty(Solver):
    """Frozen multiplier λ ≡ λ₀."""

    name: ClassVar[str] = "penalty"

    def make_dual_optimizer(self, problem: UnlearningProblem) -> torch.optim.Optimizer | None:
        return None

    def dual_is_live(self, step: int, epoch: int) -> bool:
        return False

    def step(self, ctx: Primitives, micro: MicroBatches) -> StepResult:
        """θ_{t+1} = θ_t − α ∇_θ (L_f + λ₀ (c − ε)) at θ_t;  λ_{t+1} = λ₀."""
        seen = ctx.observe(micro, backward=True)
        return StepResult(seen, ctx.primal_step())
