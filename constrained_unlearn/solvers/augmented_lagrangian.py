"""The augmented Lagrangian method (method of multipliers).

For an inequality ``g(θ) ≤ 0`` with penalty ``c > 0`` the primal minimises

    L_c(θ, λ) = L_f(θ) + (1 / 2c) · ( max(0, λ + c g(θ))² − λ² )

and after each primal step the multiplier moves by ``λ ← max(0, λ + c · g(θ_{t+1}))``.

cooper 1.0.1's dual contribution for this formulation is ``λ · g`` (not scaled by ``c``), so the
dual SGD step size is set to ``c``; ``dual_lr`` is therefore ignored here and must not be set to
something else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import cooper

from constrained_unlearn.solvers.base import Solver, Timing


@dataclass
class AugmentedLagrangian(Solver):
    """Method of multipliers with a fixed penalty ``c`` (``penalty``, > 0)."""

    name: ClassVar[str] = "augmented-lagrangian"
    timing: ClassVar[Timing] = "primal-then-dual"
    formulation: ClassVar[type] = cooper.formulations.AugmentedLagrangian

    penalty: float = 1.0
    dual_lr: float | None = None  # type: ignore[assignment]

    def validate(self) -> None:
        if not isinstance(self.penalty, (int, float)) or not math.isfinite(self.penalty):
            raise ValueError(f"penalty must be a finite number > 0, got {self.penalty!r}")
        if self.penalty <= 0:
            raise ValueError(
                f"penalty must be > 0 (c = 0 makes the inequality term NaN), got {self.penalty}"
            )
        if self.dual_lr is not None and self.dual_lr != self.penalty:
            raise ValueError(
                f"the augmented Lagrangian's dual step is λ ← max(0, λ + c·g): dual_lr is the "
                f"penalty c. Leave dual_lr unset (got dual_lr={self.dual_lr}, penalty={self.penalty})"
            )
        self.dual_lr = self.penalty
        super().validate()

    def penalty_init(self) -> float | None:
        return float(self.penalty)
