"""Fixed penalty: the multiplier never moves (the scalarised baselines).

    min_θ  L_f(θ) + λ₀ · (c(θ) − ε)

has the same gradient as ``L_f + λ₀ c``: GradDiff with weight λ₀, NPO + retain NLL, and so on.
Running baselines through this solver makes them comparable with PDU step for step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from constrained_unlearn.problem import UnlearningProblem
from constrained_unlearn.solvers.base import Solver, Timing


@dataclass
class Penalty(Solver):
    """Frozen multiplier λ ≡ λ₀."""

    name: ClassVar[str] = "penalty"
    timing: ClassVar[Timing] = "frozen"

    def make_dual_optimizer(self, problem: UnlearningProblem) -> torch.optim.Optimizer | None:
        return None
