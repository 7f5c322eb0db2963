"""Solvers by name: ``make_solver("extragradient", dual_lr=5.0)``."""

from __future__ import annotations

import difflib
from typing import Any

from constrained_unlearn.solvers.augmented_lagrangian import AugmentedLagrangian
from constrained_unlearn.solvers.base import Solver
from constrained_unlearn.solvers.extragradient import Extragradient
from constrained_unlearn.solvers.gda import GDA, AlternatingGDA
from constrained_unlearn.solvers.nupi import NuPI
from constrained_unlearn.solvers.penalty import Penalty

__all__ = ["SOLVERS", "make_solver", "normalize_solver_name", "register_solver"]

SOLVERS: dict[str, type[Solver]] = {
    cls.name: cls
    for cls in (GDA, AlternatingGDA, Extragradient, AugmentedLagrangian, NuPI, Penalty)
}


def register_solver(cls: type[Solver]) -> type[Solver]:
    """Make ``cls`` selectable by its ``name`` (``make_solver``, configs, ``compare``).

    Usable as a class decorator. Raises ``ValueError`` when the name is taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Solver)):
        raise TypeError(f"register_solver takes a Solver subclass, got {cls!r}")
    key = cls.name.strip().lower().replace("_", "-")
    if key in ("", "base"):
        raise ValueError(f"{cls.__name__} needs its own `name` class attribute (got {cls.name!r})")
    if SOLVERS.get(key, cls) is not cls:
        raise ValueError(f"solver name {key!r} is taken by {SOLVERS[key].__name__}")
    SOLVERS[key] = cls
    return cls


def normalize_solver_name(solver: str) -> str:
    """The canonical name of ``solver`` (case-insensitive, ``_`` counts as ``-``).

    The only place solver names are normalised.

    Raises:
        TypeError: ``solver`` is not a string.
        ValueError: unknown name (the message lists the valid ones and the nearest match).
    """
    if not isinstance(solver, str):
        raise TypeError(f"solver must be a name or a Solver, got {type(solver).__name__}")
    key = solver.strip().lower().replace("_", "-")
    if key not in SOLVERS:
        near = difflib.get_close_matches(key, SOLVERS, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"unknown solver {solver!r}; choose one of {sorted(SOLVERS)}.{hint}")
    return key


def make_solver(solver: str | Solver, **hyperparameters: Any) -> Solver:
    """Return ``solver`` if it is already a [`Solver`][constrained_unlearn.solvers.Solver], else build the named one.

    Raises:
        ValueError: unknown name (the message lists the valid ones and the nearest match), or
            hyper-parameters given together with a solver object.
    """
    if isinstance(solver, Solver):
        if hyperparameters:
            raise ValueError(
                "pass hyper-parameters either to the solver object or with a solver name, "
                f"not both (got {sorted(hyperparameters)})"
            )
        return solver
    key = normalize_solver_name(solver)
    cls = SOLVERS[key]
    try:
        return cls(**hyperparameters)
    except TypeError as err:
        fields = sorted(cls.__dataclass_fields__)
        raise TypeError(f"solver {key!r} accepts {fields}: {err}") from None
