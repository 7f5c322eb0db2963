"""Gradient descent–ascent: simultaneous and alternating.

Simultaneous GDA (PDU's scheme):

    θ_{t+1} = θ_t − α ∇_θ L(θ_t, λ_t)
    λ_{t+1} = max(0, λ_t + η g(θ_t))

Alternating (primal first, then dual at the new point):

    θ_{t+1} = θ_t − α ∇_θ L(θ_t, λ_t)
    λ_{t+1} = max(0, λ_t + η g(θ_{t+1}))       one extra forward pass (no backward) per step
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from constrained_unlearn.solvers.base import MicroBatches, Primitives, Solver, StepResult

__all__ = ["GDA", "AlternatingGDA"]


@dataclass
class GDA(Solver):
    """Simultaneous gradient descent–ascent (the default; PDU's update).

    ``step`` is [`Solver.step`][constrained_unlearn.solvers.Solver.step]:  observe at θ_t (backward) → primal step → dual step on
    ``g(θ_t)``.
    """

    name: ClassVar[str] = "gda"


@dataclass
class AlternatingGDA(Solver):
    """Alternating GDA: the dual step sees the constraints at the updated parameters."""

    name: ClassVar[str] = "alternating-gda"

    def step(self, ctx: Primitives, micro: MicroBatches) -> StepResult:
        """θ_{t+1} = θ_t − α ∇_θ L(θ_t, λ_t);  λ_{t+1} = max(0, λ_t + η g(θ_{t+1}))."""
        seen = ctx.observe(micro, backward=True)  # ∇_θ L(θ_t, λ_t), g(θ_t) (logged)
        grad_norm = ctx.primal_step()  # θ_{t+1}
        if ctx.dual_moves:  # the extra forward only when λ moves in this step
            after = ctx.observe(micro, backward=False)  # g(θ_{t+1})
            ctx.dual_step(after.values)  # λ_{t+1}
        return StepResult(seen, grad_norm)
