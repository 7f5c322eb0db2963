"""Per-step records, the run's history and the callback protocol."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from constrained_unlearn.engine.feasibility import FeasibilityReport

if TYPE_CHECKING:
    from constrained_unlearn.engine.loop import UnlearningEngine

__all__ = ["Callback", "History", "StepRecord"]


@dataclass
class StepRecord:
    """What happened in one optimiser step.

    ``values``/``violations`` are means over the step's micro-batches and processes at θ_t;
    ``multipliers`` are λ after the step's dual update (λ_{t+1}).
    """

    step: int
    epoch: int
    objective: float
    values: dict[str, float]
    violations: dict[str, float]
    multipliers: dict[str, float]
    lr: float
    grad_norm: float | None
    dual_live: bool
    metrics: dict[str, float] = field(default_factory=dict)

    def postfix(self) -> dict[str, str]:
        """Short strings for a progress bar: objective, values and multipliers."""
        out = {"L_f": f"{self.objective:.3g}"}
        for name, value in self.values.items():
            out[name] = f"{value:.3g}"
            if name in self.multipliers:
                out[f"λ_{name}"] = f"{self.multipliers[name]:.3g}"
        return out

    def flat(self) -> dict[str, float]:
        """``{"objective": …, "retain/value": …, "retain/violation": …, "retain/multiplier": …}``."""
        out: dict[str, float] = {"objective": self.objective, "lr": self.lr}
        if self.grad_norm is not None:
            out["grad_norm"] = self.grad_norm
        for name, value in self.values.items():
            out[f"{name}/value"] = value
            out[f"{name}/violation"] = self.violations[name]
        for name, value in self.multipliers.items():
            out[f"{name}/multiplier"] = value
        out.update(self.metrics)
        return out


@dataclass
class History:
    """All step records of a run, in order.

    Attributes:
        records: one [`StepRecord`][constrained_unlearn.engine.StepRecord] per optimiser step.
        feasibility: ``{name: FeasibilityReport}`` of the last step's values against the bounds,
            set at the end of [`UnlearningEngine.fit`][constrained_unlearn.engine.UnlearningEngine.fit] (empty before).
    """

    records: list[StepRecord] = field(default_factory=list)
    feasibility: dict[str, FeasibilityReport] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[StepRecord]:
        return iter(self.records)

    def series(self, key: str) -> list[float]:
        """One flat key over steps, e.g. ``history.series("retain/multiplier")``."""
        return [record.flat()[key] for record in self.records]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [{"step": r.step, "epoch": r.epoch, **r.flat()} for r in self.records]


class Callback:
    """Hooks called by the engine on the main process and the others alike."""

    def on_train_begin(self, engine: UnlearningEngine) -> None:  # noqa: B027
        """Before the first step."""

    def on_step_end(self, engine: UnlearningEngine, record: StepRecord) -> None:  # noqa: B027
        """After every optimiser step (and its dual step)."""

    def on_epoch_end(self, engine: UnlearningEngine, epoch: int) -> None:  # noqa: B027
        """After every epoch."""

    def on_train_end(self, engine: UnlearningEngine, history: History) -> None:  # noqa: B027
        """After the last step."""
