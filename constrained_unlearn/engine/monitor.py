"""The feasibility monitor: warns while a run drifts outside its constraints.

After every optimiser step, for each constraint ``i`` with violation ``v_i = c̄_i − ε_i``:

* ``n_i ← n_i + 1`` if the dual is live and ``v_i > 0``, else ``n_i ← 0``; when
  ``n_i ≥ patience`` a [`ConstraintInfeasibleWarning`][constrained_unlearn.engine.ConstraintInfeasibleWarning] is issued (once per constraint);
* when ``λ_i > limit`` a [`ConstraintInfeasibleWarning`][constrained_unlearn.engine.ConstraintInfeasibleWarning] is issued (once per constraint).

The counters live in a `MonitorState`, so they survive
a resume.
"""

from __future__ import annotations

import warnings

from constrained_unlearn.engine.errors import ConstraintInfeasibleWarning
from constrained_unlearn.engine.history import StepRecord
from constrained_unlearn.engine.state import MonitorState

__all__ = ["FeasibilityMonitor"]


class FeasibilityMonitor:
    """Watches the step records; ``patience``/``limit`` ``None`` switch a check off."""

    def __init__(self, state: MonitorState, patience: int | None, limit: float | None) -> None:
        self.state = state
        self.patience = patience
        self.limit = limit

    def update(self, record: StepRecord) -> None:
        counts, warned = self.state.violated_for, self.state.warned
        for name, violation in record.violations.items():
            counts[name] = counts.get(name, 0) + 1 if record.dual_live and violation > 0 else 0
            if self.patience and counts[name] >= self.patience and name not in warned:
                warned.add(name)
                lam = record.multipliers.get(name, float("nan"))
                warnings.warn(
                    f"constraint {name!r} has been violated for {counts[name]} consecutive "
                    f"steps after warm-up (value {record.values[name]:.4g} > bound "
                    f"{record.values[name] - violation:.4g}, λ = {lam:.4g}). Raise the bound "
                    "(epsilon / slack), lower the learning rate, or raise the dual lr.",
                    ConstraintInfeasibleWarning,
                    stacklevel=4,
                )
        for name, lam in record.multipliers.items():
            key = f"{name}/limit"
            if self.limit is not None and lam > self.limit and key not in warned:
                warned.add(key)
                warnings.warn(
                    f"multiplier of {name!r} reached {lam:.4g} > {self.limit:.4g}: the "
                    "constraint is probably infeasible at this learning rate; raise its bound "
                    "or lower the learning rate.",
                    ConstraintInfeasibleWarning,
                    stacklevel=4,
                )
