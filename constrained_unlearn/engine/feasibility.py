"""Whether a run ended inside its constraints: the final value of each constraint against its bound.

For a constraint ``c_i(θ) ≤ ε_i`` with final value ``v_i`` and relative tolerance ``τ ≥ 0``:

    satisfied_i  ⇔  v_i ≤ ε_i · (1 + τ)        factor_i = v_i / ε_i

A run that ends outside is reported loudly (a [`ConstraintInfeasibleWarning`][constrained_unlearn.engine.ConstraintInfeasibleWarning] naming the
factor), never as a silent "done".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from constrained_unlearn.engine.errors import ConstraintInfeasibleWarning

__all__ = ["FeasibilityReport", "check_feasibility", "warn_if_infeasible"]


@dataclass(frozen=True)
class FeasibilityReport:
    """The end-of-run verdict on one constraint.

    Attributes:
        name: the constraint's name.
        value: its final value v.
        bound: its bound ε.
        tolerance: the relative tolerance τ used.
        satisfied: ``v ≤ ε (1 + τ)`` (``False`` when v is NaN).
        factor: ``v / ε`` (``inf`` when ε = 0 < v).
    """

    name: str
    value: float
    bound: float
    tolerance: float
    satisfied: bool
    factor: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_feasibility(
    values: Mapping[str, float], bounds: Mapping[str, float], tolerance: float = 0.0
) -> dict[str, FeasibilityReport]:
    """One [`FeasibilityReport`][constrained_unlearn.engine.FeasibilityReport] per constraint of ``bounds``.

    Raises:
        ValueError: a negative or non-finite tolerance, or a constraint without a final value.
    """
    if isinstance(tolerance, bool) or not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(
            f"the feasibility tolerance must be a finite number ≥ 0, got {tolerance!r}"
        )
    missing = sorted(set(bounds) - set(values))
    if missing:
        raise ValueError(f"no final value for constraint(s) {missing}")
    out = {}
    for name, bound in bounds.items():
        value, bound = float(values[name]), float(bound)
        if bound != 0:
            factor = value / bound
        else:
            factor = 0.0 if value <= 0 else math.inf
        satisfied = math.isfinite(value) and value <= bound + abs(bound) * tolerance
        out[name] = FeasibilityReport(name, value, bound, float(tolerance), satisfied, factor)
    return out


def warn_if_infeasible(reports: Mapping[str, FeasibilityReport], *, stacklevel: int = 2) -> None:
    """Warn once per violated constraint, naming its value, bound and factor."""
    for report in reports.values():
        if not report.satisfied:
            warnings.warn(
                f"the run ended outside constraint {report.name!r}: final value "
                f"{report.value:.6g} > bound {report.bound:.6g} ({report.factor:.4g} × the bound, "
                f"tolerance {report.tolerance:g}). The result does not keep what it should keep: "
                "raise the bound, lower the learning rate, raise the dual step or train longer.",
                ConstraintInfeasibleWarning,
                stacklevel=stacklevel + 1,
            )
