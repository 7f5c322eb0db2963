"""The augmented Lagrangian method (method of multipliers).

For an inequality ``g(θ) ≤ 0`` with penalty ``c > 0`` the primal minimises

    L_c(θ, λ) = L_f(θ) + (1 / 2c) · ( max(0, λ + c g(θ))² − λ² )

and after each primal step the multiplier moves by ``λ ← max(0, λ + η · g(θ_{t+1}))``.

The classical method of multipliers takes the dual step η equal to the penalty c; that is the
default here (``dual_lr=None``). ``dual_lr`` means the same as for every other solver, the dual
step η, so the same ``solver_kwargs`` run under every solver name. (cooper 1.0.1's dual
contribution for this formulation is ``λ · g``, not scaled by ``c``: the dual SGD step size is η.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import cooper

from constrained_unlearn.solvers.base import Solver
from constrained_unlearn.solvers.gda import AlternatingGDA

__all__ = ["AugmentedLagrangian"]


@dataclass
class AugmentedLagrangian(Solver):
    """Method of multipliers with a fixed penalty ``c`` (``penalty``, > 0).

    ``dual_lr`` is the dual step η; ``None`` (default) takes η = c.
    """

    name: ClassVar[str] = "augmented-lagrangian"
    formulation: ClassVar[type] = cooper.formulations.AugmentedLagrangian
    dual_lr_may_be_none: ClassVar[bool] = True

    penalty: float = 1.0
    dual_lr: float | None = None  # type: ignore[assignment]

    def validate(self) -> None:
        super().validate()
        if (
            isinstance(self.penalty, bool)
            or not isinstance(self.penalty, (int, float))
            or not math.isfinite(self.penalty)
        ):
            raise ValueError(f"penalty must be a finite number > 0, got {self.penalty!r}")
        if self.penalty <= 0:
            raise ValueError(
                f"penalty must be > 0 (c = 0 makes the inequality term NaN), got {self.penalty}"
            )

    @property
    def dual_step_size(self) -> float:
        """η: ``dual_lr`` when given, else the penalty c (the method of multipliers)."""
        return float(self.penalty if self.dual_lr is None else self.dual_lr)

    def penalty_init(self) -> float | None:
        return float(self.penalty)

    # The schedule is alternating GDA's — θ_{t+1} = θ_t − α ∇_θ L_c(θ_t, λ_t), then
    # λ_{t+1} = max(0, λ_t + η g(θ_{t+1})) — on the augmented Lagrangian L_c, which the
    # formulation above puts into ctx.observe's backward.
    step = AlternatingGDA.step
