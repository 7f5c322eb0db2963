"""Extragradient (Korpelevich 1976) on the Lagrangian, written in the engine's step.

    θ_{t+½} = θ_t − α ∇_θ L(θ_t, λ_t),          λ_{t+½} = max(0, λ_t + η g(θ_t))
    θ_{t+1} = θ_t − α ∇_θ L(θ_{t+½}, λ_{t+½}),   λ_{t+1} = max(0, λ_t + η g(θ_{t+½}))

Cost per step: two forward/backward passes and one extra copy of the trainable parameters (to
return from θ_{t+½} to θ_t). Works with any torch optimiser: the extrapolation is an ordinary
optimiser step, then the parameters are restored. With a stateful optimiser (Adam) its moments
are updated at both half-steps, as in Extra-Adam (Gidel et al. 2019). cooper's ``ExtraSGD``
is not used: it cannot restore its state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from constrained_unlearn.solvers.base import Solver, Timing


@dataclass
class Extragradient(Solver):
    """Extragradient primal-dual steps; stabilises the oscillation of GDA on λ."""

    name: ClassVar[str] = "extragradient"
    timing: ClassVar[Timing] = "simultaneous"
    extragradient: ClassVar[bool] = True
