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

from constrained_unlearn.solvers.base import Solver, Timing


@dataclass
class GDA(Solver):
    """Simultaneous gradient descent–ascent (the default; PDU's update)."""

    name: ClassVar[str] = "gda"
    timing: ClassVar[Timing] = "simultaneous"


@dataclass
class AlternatingGDA(Solver):
    """Alternating GDA: the dual step sees the constraints at the updated parameters."""

    name: ClassVar[str] = "alternating-gda"
    timing: ClassVar[Timing] = "primal-then-dual"
