"""Extragradient (Korpelevich 1976) on the Lagrangian, on the engine's primitives.

    θ_{t+½} = θ_t − α ∇_θ L(θ_t, λ_t),          λ_{t+½} = max(0, λ_t + η g(θ_t))
    θ_{t+1} = θ_t − α ∇_θ L(θ_{t+½}, λ_{t+½}),   λ_{t+1} = max(0, λ_t + η g(θ_{t+½}))

Cost per step: two forward/backward passes and one extra copy of the trainable parameters (to
return from θ_{t+½} to θ_t). Works with any torch optimiser: the extrapolation is an ordinary
optimiser step, then the parameters are restored. With a stateful optimiser (Adam) its moments
are updated at both half-steps, as in Extra-Adam (Gidel et al. 2019). cooper's ``ExtraSGD``
is not used: it cannot restore its state. The learning-rate schedule moves once per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from constrained_unlearn.solvers.base import MicroBatches, Primitives, Solver, StepResult

__all__ = ["Extragradient"]


@dataclass
class Extragradient(Solver):
    """Extragradient primal-dual steps; stabilises the oscillation of GDA on λ."""

    name: ClassVar[str] = "extragradient"
    extrapolates: ClassVar[bool] = True

    def step(self, ctx: Primitives, micro: MicroBatches) -> StepResult:
        """The two half-steps of the module docstring."""
        seen = ctx.observe(micro, backward=True)  # ∇_θ L(θ_t, λ_t), g(θ_t)
        start = ctx.snapshot()  # (θ_t, λ_t)
        ctx.primal_step(schedule=False)  # θ_{t+½}
        ctx.dual_step(seen.values)  # λ_{t+½}
        half = ctx.observe(micro, backward=True)  # ∇_θ L(θ_{t+½}, λ_{t+½}), g(θ_{t+½})
        ctx.restore(start)  # back to (θ_t, λ_t); the gradient stays
        grad_norm = ctx.primal_step()  # θ_{t+1}
        ctx.dual_step(half.values)  # λ_{t+1} from g(θ_{t+½})
        return StepResult(seen, grad_norm)
