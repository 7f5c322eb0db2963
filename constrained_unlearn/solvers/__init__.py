"""Primal-dual schemes, swapped with one argument (``solver="gda"``, ``"extragradient"`` …)."""

from constrained_unlearn.solvers.augmented_lagrangian import AugmentedLagrangian
from constrained_unlearn.solvers.base import (
    SHARED_HYPERPARAMETERS,
    Observation,
    Primitives,
    Solver,
    StepResult,
    dual_step,
)
from constrained_unlearn.solvers.extragradient import Extragradient
from constrained_unlearn.solvers.gda import GDA, AlternatingGDA
from constrained_unlearn.solvers.nupi import NuPI
from constrained_unlearn.solvers.penalty import Penalty
from constrained_unlearn.solvers.registry import (
    SOLVERS,
    make_solver,
    normalize_solver_name,
    register_solver,
)

__all__ = [
    "GDA",
    "SHARED_HYPERPARAMETERS",
    "SOLVERS",
    "AlternatingGDA",
    "AugmentedLagrangian",
    "Extragradient",
    "NuPI",
    "Observation",
    "Penalty",
    "Primitives",
    "Solver",
    "StepResult",
    "dual_step",
    "make_solver",
    "normalize_solver_name",
    "register_solver",
]
