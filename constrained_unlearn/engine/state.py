"""The explicit state of a run: where it is, what the monitor has seen, what determines it.

Everything the engine must carry across a checkpoint besides the model, the optimisers and the
problem lives here, with ``state_dict`` / ``load_state_dict`` (JSON-serialisable):

* `Progress` — optimiser steps done, the epoch and the micro-batches consumed in it,
  whether its end (epoch dual step, callbacks) is done, and the sums of the per-step values for
  ``dual_update="epoch"``;
* `MonitorState` — the feasibility monitor's counters;
* [`RunState`][constrained_unlearn.engine.RunState] — both, plus the starting values, the run signature (what determines the
  run, compared on resume) and the signature keys a resume deliberately overrode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["MonitorState", "Progress", "RunState"]


@dataclass
class Progress:
    """Position of the run.

    Attributes:
        global_step: optimiser steps done.
        epoch: the current epoch (0-based).
        position: micro-batches of ``epoch`` consumed (on this rank).
        epoch_closed: the end of ``epoch`` (epoch dual step, ``on_epoch_end``) is done.
        epoch_dual_sums: ``{name: Σ_s c̄_i(s)}`` over the epoch's live steps (``"epoch"`` cadence).
        epoch_dual_steps: how many steps those sums hold.
    """

    global_step: int = 0
    epoch: int = 0
    position: int = 0
    epoch_closed: bool = False
    epoch_dual_sums: dict[str, torch.Tensor] = field(default_factory=dict)
    epoch_dual_steps: int = 0

    def resume_point(self) -> tuple[int, int, int]:
        """``(global step, epoch, position)`` a resumed run starts from: equal ⇒ same state."""
        if self.epoch_closed:
            return self.global_step, self.epoch + 1, 0
        return self.global_step, self.epoch, self.position

    def first_epoch(self) -> int:
        """The epoch the training loop starts (or continues) with."""
        return self.epoch + 1 if self.epoch_closed else self.epoch

    def start_epoch(self, epoch: int) -> None:
        """Enter ``epoch`` (a no-op when continuing inside it)."""
        if epoch != self.epoch or self.epoch_closed:
            self.epoch, self.position, self.epoch_closed = epoch, 0, False

    def finish_step(self, micro_batches: int) -> None:
        self.global_step += 1
        self.position += micro_batches

    def add_epoch_values(self, values: Mapping[str, float], device: torch.device) -> None:
        """Add one live step's mean values to the epoch sums (``dual_update="epoch"``)."""
        for name, value in values.items():
            tensor = torch.tensor(value, device=device)
            self.epoch_dual_sums[name] = self.epoch_dual_sums.get(name, 0.0) + tensor
        self.epoch_dual_steps += 1

    def take_epoch_means(self) -> dict[str, torch.Tensor] | None:
        """``{name: Σ / n}`` of the epoch's live steps (``None`` if none), and reset the sums."""
        n = self.epoch_dual_steps
        means = {name: s / n for name, s in self.epoch_dual_sums.items()} if n else None
        self.epoch_dual_sums, self.epoch_dual_steps = {}, 0
        return means

    def state_dict(self) -> dict[str, Any]:
        step, epoch, position = self.resume_point()
        return {
            "global_step": step,
            "epoch": epoch,
            "position": position,
            "epoch_dual_sums": {n: float(v) for n, v in self.epoch_dual_sums.items()},
            "epoch_dual_steps": self.epoch_dual_steps,
        }

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        self.global_step = int(state["global_step"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.epoch_closed = False
        self.epoch_dual_sums = {
            n: torch.tensor(v, dtype=torch.float32, device=device)
            for n, v in state["epoch_dual_sums"].items()
        }
        self.epoch_dual_steps = int(state["epoch_dual_steps"])


@dataclass
class MonitorState:
    """Counters of the feasibility monitor: consecutive violated live steps, warnings given."""

    violated_for: dict[str, int] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)

    def state_dict(self) -> dict[str, Any]:
        return {"violated_for": dict(self.violated_for), "warned": sorted(self.warned)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.violated_for = {n: int(v) for n, v in state["violated_for"].items()}
        self.warned = set(state["warned"])


@dataclass
class RunState:
    """Progress, monitor, starting values and the run signature of one run.

    Attributes:
        progress: where the run is.
        monitor: the feasibility monitor's counters.
        initial_values: ``{name: c_i(θ₀)}``, the starting constraint values.
        signature: flat ``{key: JSON value}`` of what determines the run (see
            `constrained_unlearn.engine.signature`).
        resume_overridden: ``{key: {"saved": old, "now": new}}`` for every signature key a
            resume accepted through ``EngineConfig.resume_overrides``.
    """

    progress: Progress = field(default_factory=Progress)
    monitor: MonitorState = field(default_factory=MonitorState)
    initial_values: dict[str, float] = field(default_factory=dict)
    signature: dict[str, Any] = field(default_factory=dict)
    resume_overridden: dict[str, dict[str, Any]] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.progress.state_dict(),
            **self.monitor.state_dict(),
            "initial_values": dict(self.initial_values),
            "signature": dict(self.signature),
            "resume_overridden": dict(self.resume_overridden),
        }

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        """Restore from `state_dict`; the signature stays this run's own (it was compared
        with the saved one before loading)."""
        self.progress.load_state_dict(state, device)
        self.monitor.load_state_dict(state)
        self.initial_values = {n: float(v) for n, v in state["initial_values"].items()}
        self.resume_overridden = dict(state.get("resume_overridden", {}))
