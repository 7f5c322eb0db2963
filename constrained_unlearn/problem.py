"""The unlearning problem as a cooper ``ConstrainedMinimizationProblem``.

    minimise_θ   L_f(θ)                              forget objective
    subject to   c_i(θ) ≤ ε_i,   i = 1..m           e.g. retain NLL ≤ ε, KL to θ₀ ≤ δ

cooper writes inequalities as ``g(θ) ≤ 0``, so each constraint is observed as the violation
``g_i(θ) = c_i(θ) − ε_i``. The Lagrangian is ``L(θ, λ) = L_f(θ) + Σ_i λ_i g_i(θ)`` with ``λ ≥ 0``.

Each constraint is a ``cooper.Constraint`` held as an attribute named after it (cooper only
registers attributes; a constraint kept in a list is never updated nor saved), with its own
one-entry ``DenseMultiplier``. All dual state is therefore keyed by constraint name.
"""

from __future__ import annotations

import keyword
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import cooper
import torch

__all__ = [
    "ConstraintSpec",
    "InfeasibleStartWarning",
    "UnlearningProblem",
    "check_multiplier_init",
]

_RESERVED = {"constraints", "multipliers", "state_dict", "load_state_dict", "to", "bounds"}


class InfeasibleStartWarning(UserWarning):
    """The starting model already violates a constraint."""


@dataclass(frozen=True)
class ConstraintSpec:
    """One constraint ``value(θ) ≤ bound``.

    Attributes:
        name: identifier; the key of this constraint's value in [`Terms`][constrained_unlearn.engine.Terms]
            and of its multiplier in every checkpoint and log.
        bound: ε. ``None`` means "calibrate from the starting model" as
            ``ε = (1 + slack) · value(θ₀)``.
        slack: relative slack used by calibration (``α`` in ``(1 + α) L(θ₀)``), ≥ 0.
    """

    name: str = "retain"
    bound: float | None = None
    slack: float = 0.1

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or keyword.iskeyword(self.name):
            raise ValueError(
                f"constraint name {self.name!r} must be a Python identifier (letters, digits, _)"
            )
        if self.name in _RESERVED or self.name.startswith("_"):
            raise ValueError(f"constraint name {self.name!r} is reserved; choose another name")
        if self.bound is not None:
            _check_bound(self.name, self.bound)
        if not math.isfinite(self.slack) or self.slack < 0:
            raise ValueError(
                f"slack of constraint {self.name!r} must be a finite number ≥ 0, got {self.slack}"
            )


def _check_bound(name: str, bound: float) -> None:
    if not isinstance(bound, (int, float)) or not math.isfinite(bound) or bound <= 0:
        raise ValueError(
            f"epsilon (bound) of constraint {name!r} must be a finite number > 0, got {bound!r}; "
            "pass a positive value or bound=None to calibrate it from the starting model"
        )


def check_multiplier_init(
    value: float | Mapping[str, float], names: Sequence[str] | None = None
) -> dict[str, float] | None:
    """Validate λ₀: one number or ``{constraint: number}``, each finite and ≥ 0.

    With ``names`` the mapping's keys must be exactly the constraint names, and the per-name
    values are returned; without, only the numbers are checked (``None`` is returned).
    """
    if isinstance(value, Mapping):
        if names is not None:
            unknown, missing = set(value) - set(names), set(names) - set(value)
            if unknown or missing:
                raise ValueError(
                    f"multiplier_init keys must be the constraint names {list(names)}; "
                    f"unknown {sorted(unknown)}, missing {sorted(missing)}"
                )
        numbers = dict(value)
    else:
        numbers = {name: value for name in (names or ["λ₀"])}
    for name, number in numbers.items():
        if (
            isinstance(number, bool)
            or not isinstance(number, (int, float))
            or not math.isfinite(number)
            or number < 0
        ):
            where = "" if name == "λ₀" else f" (constraint {name!r})"
            raise ValueError(
                f"multiplier_init must be a finite number ≥ 0{where}, got {number!r}; "
                "the multiplier of an inequality constraint is never negative"
            )
    if names is None:
        return None
    return {name: float(numbers[name]) for name in names}


class UnlearningProblem(cooper.ConstrainedMinimizationProblem):
    """``min L_f(θ)  s.t.  c_i(θ) − ε_i ≤ 0`` with one named multiplier per constraint.

    Args:
        constraints: the constraint specifications; names must be unique.
        formulation: a cooper formulation class (``Lagrangian`` or ``AugmentedLagrangian``).
        multiplier_init: λ₀, one value for all constraints or ``{name: value}``; ≥ 0.
        penalty_init: the penalty coefficient ``c > 0`` (only for formulations that use one).
        device: where the multipliers live.
    """

    def __init__(
        self,
        constraints: Sequence[ConstraintSpec],
        *,
        formulation: type[cooper.formulations.Formulation] = cooper.formulations.Lagrangian,
        multiplier_init: float | Mapping[str, float] = 1.0,
        penalty_init: float | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if len(constraints) == 0:
            raise ValueError("at least one constraint is needed, e.g. ConstraintSpec('retain')")
        names = [spec.name for spec in constraints]
        if len(set(names)) != len(names):
            raise ValueError(f"constraint names must be unique, got {names}")
        inits = check_multiplier_init(multiplier_init, names)
        assert inits is not None  # names given
        uses_penalty = formulation.expects_penalty_coefficient
        if uses_penalty and (penalty_init is None or not penalty_init > 0):
            raise ValueError(
                f"{formulation.__name__} needs penalty_init > 0 (c = 0 makes the augmented "
                f"Lagrangian of an inequality NaN), got {penalty_init}"
            )
        self.specs: dict[str, ConstraintSpec] = {spec.name: spec for spec in constraints}
        self._bounds: dict[str, float | None] = {spec.name: spec.bound for spec in constraints}
        for name in names:
            multiplier = cooper.multipliers.DenseMultiplier(
                init=torch.tensor([inits[name]], dtype=torch.float32),
                device=torch.device(device) if device is not None else None,
            )
            penalty = None
            if uses_penalty:
                assert penalty_init is not None  # checked above
                penalty = cooper.penalty_coefficients.DensePenaltyCoefficient(
                    init=torch.tensor([float(penalty_init)], device=device)
                )
            constraint = cooper.Constraint(
                constraint_type=cooper.ConstraintType.INEQUALITY,
                formulation_type=formulation,
                multiplier=multiplier if formulation.expects_multiplier else None,
                penalty_coefficient=penalty,
            )
            setattr(self, name, constraint)
        registered = [name for name, _ in self.named_constraints()]
        if registered != names:  # guards cooper's attribute-only registration
            raise RuntimeError(f"constraints registered as {registered}, expected {names}")

    # -- bounds ---------------------------------------------------------------------------
    @property
    def constraint_names(self) -> list[str]:
        """Names in registration order (the order of every per-constraint list)."""
        return list(self.specs)

    @property
    def bounds(self) -> dict[str, float | None]:
        """``{name: ε}``; ``None`` until calibrated."""
        return dict(self._bounds)

    def set_bound(self, name: str, value: float) -> None:
        """Set ε for one constraint (validated: finite, > 0)."""
        self._require(name)
        _check_bound(name, value)
        self._bounds[name] = float(value)

    def require_bounds(self) -> dict[str, float]:
        """All bounds, or an error naming the ones still uncalibrated."""
        missing = [n for n, b in self._bounds.items() if b is None]
        if missing:
            raise ValueError(
                f"constraints {missing} have no bound; give ConstraintSpec(bound=...) or calibrate "
                "them with UnlearningProblem.calibrate (UnlearningEngine.calibrate measures the "
                "starting values) before training"
            )
        return {n: float(b) for n, b in self._bounds.items()}  # type: ignore[arg-type]

    def calibrate(self, initial_values: Mapping[str, float]) -> dict[str, float]:
        """Set uncalibrated bounds from values measured at θ₀ and warn on an infeasible start.

        For a spec with ``bound=None``: ``ε = (1 + slack) · value(θ₀)``. For a given bound with
        ``value(θ₀) > ε`` an [`InfeasibleStartWarning`][constrained_unlearn.problem.InfeasibleStartWarning] is issued: the constraint is active
        from the first step and λ will grow until the retain loss comes down.
        """
        for name, spec in self.specs.items():
            if name not in initial_values:
                raise KeyError(f"no initial value measured for constraint {name!r}")
            value = float(initial_values[name])
            if not math.isfinite(value):
                raise ValueError(f"constraint {name!r} is not finite at the start: {value}")
            if spec.bound is None:
                bound = (1.0 + spec.slack) * value
                if bound <= 0:
                    raise ValueError(
                        f"cannot calibrate {name!r}: value at start is {value} (must be > 0); "
                        "give an explicit bound instead"
                    )
                self._bounds[name] = bound
            elif value > spec.bound:
                warnings.warn(
                    f"constraint {name!r} is infeasible at the start: value {value:.6g} > bound "
                    f"{spec.bound:.6g}. Training will first push it below the bound; raise the "
                    "bound or calibrate it (bound=None) if that is not intended.",
                    InfeasibleStartWarning,
                    stacklevel=2,
                )
        return self.require_bounds()

    # -- cooper interface -----------------------------------------------------------------
    def compute_cmp_state(
        self,
        objective: torch.Tensor | None,
        values: Mapping[str, torch.Tensor],
        *,
        primal: bool = True,
        dual: bool = False,
    ) -> cooper.CMPState:
        """Observe the constraints ``g_i = values[i] − ε_i``.

        Args:
            objective: scalar L_f (or ``None`` for a pure dual observation).
            values: ``{name: scalar}`` for every constraint.
            primal: whether the observation contributes to the primal Lagrangian.
            dual: whether it contributes to the dual Lagrangian (the engine observes the dual
                side once per optimiser step from averaged, all-reduced violations).
        """
        bounds = self.require_bounds()
        observed = {}
        for name in self.specs:
            if name not in values:
                raise KeyError(
                    f"the terms function returned no value for constraint {name!r} "
                    f"(got {sorted(values)})"
                )
            violation = values[name] - bounds[name]
            observed[getattr(self, name)] = cooper.ConstraintState(
                violation=violation.reshape(1),
                contributes_to_primal_update=primal,
                contributes_to_dual_update=dual,
            )
        return cooper.CMPState(loss=objective, observed_constraints=observed)

    # -- named accessors ------------------------------------------------------------------
    def multiplier_values(self) -> dict[str, float]:
        """``{name: λ}`` as Python floats."""
        return {
            name: float(_weight(constraint).detach()[0])
            for name, constraint in self.named_constraints()
            if constraint.multiplier is not None
        }

    def named_multiplier_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """Multiplier parameters in registration order, for building the dual optimiser.

        cooper's ``dual_parameters()`` iterates a set whose order changes between processes; a
        positional optimiser state built from it lands on the wrong multiplier after a resume.
        """
        return [(name, _weight(c)) for name, c in self.named_constraints() if c.multiplier]

    def _require(self, name: str) -> None:
        if name not in self.specs:
            raise KeyError(f"unknown constraint {name!r}; known: {self.constraint_names}")


def _weight(constraint: cooper.Constraint) -> torch.nn.Parameter:
    """The ``[1]`` multiplier parameter λ of a constraint (typed; nn.Module attributes are not)."""
    return cast(torch.nn.Parameter, constraint.multiplier.weight)  # type: ignore[union-attr]
