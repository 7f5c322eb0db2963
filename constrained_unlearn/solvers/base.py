"""What every primal-dual scheme shares: dual hyper-parameters and the dual step itself.

A solver is a small, declarative object. It says

* which cooper formulation the problem uses (``Lagrangian``, ``AugmentedLagrangian``),
* when the dual variable moves relative to the primal step (:attr:`Solver.timing`),
* whether the primal step is extrapolated (:attr:`Solver.extragradient`),
* which torch optimiser updates λ (:meth:`Solver.make_dual_optimizer`).

The engine runs every solver through the same step, so every solver accumulates gradients,
all-reduces violations across processes and checkpoints λ by constraint name.

With plain SGD on λ and the Lagrangian formulation, one dual step is the projected ascent

    λ ← max(0, λ + η · ḡ),        ḡ = mean violation over the step's micro-batches (all ranks)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import cooper
import torch

from constrained_unlearn.problem import ConstraintSpec, UnlearningProblem

Timing = Literal["simultaneous", "primal-then-dual", "frozen"]
"""When λ moves: from the violations at θ_t after the primal step (``simultaneous``), from a
re-evaluation at θ_{t+1} (``primal-then-dual``, one extra forward), or never (``frozen``)."""


@dataclass
class Solver:
    """Base class of the primal-dual schemes.

    Attributes:
        multiplier_init: λ₀ (one value or ``{constraint: value}``), ≥ 0. PDU uses 50–100 on
            LLMs because the margin loss is large.
        dual_lr: η, the dual step size.
        warmup_steps: λ is frozen at λ₀ for this many optimiser steps.
        warmup_epochs: λ is frozen for this many epochs (both warm-ups apply).
        dual_update: ``"step"`` — one dual step per optimiser step; ``"epoch"`` — one per
            epoch, on the mean violation of the epoch's steps.
    """

    name: ClassVar[str] = "base"
    timing: ClassVar[Timing] = "simultaneous"
    extragradient: ClassVar[bool] = False
    formulation: ClassVar[type[cooper.formulations.Formulation]] = cooper.formulations.Lagrangian

    multiplier_init: float | Mapping[str, float] = 1.0
    dual_lr: float = 1.0
    warmup_steps: int = 0
    warmup_epochs: int = 0
    dual_update: Literal["step", "epoch"] = "step"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check hyper-parameters; errors name the argument and the fix."""
        values = (
            self.multiplier_init.values()
            if isinstance(self.multiplier_init, Mapping)
            else [self.multiplier_init]
        )
        for value in values:
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"multiplier_init must be a finite number ≥ 0, got {value!r}; "
                    "the multiplier of an inequality constraint is never negative"
                )
        if self.dual_lr is not None:  # None: the solver's own default step (augmented Lagrangian)
            if (
                isinstance(self.dual_lr, bool)
                or not isinstance(self.dual_lr, (int, float))
                or not math.isfinite(self.dual_lr)
            ):
                raise ValueError(f"dual_lr must be a finite number, got {self.dual_lr!r}")
            if self.dual_lr < 0:
                raise ValueError(f"dual_lr must be ≥ 0, got {self.dual_lr}")
        for arg in ("warmup_steps", "warmup_epochs"):
            value = getattr(self, arg)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{arg} must be an integer ≥ 0, got {value!r}")
        if self.dual_update not in ("step", "epoch"):
            raise ValueError(f"dual_update must be 'step' or 'epoch', got {self.dual_update!r}")

    # -- construction ---------------------------------------------------------------------
    def penalty_init(self) -> float | None:
        """The penalty coefficient the formulation needs, if any."""
        return None

    def build_problem(
        self, constraints: list[ConstraintSpec], device: torch.device | str | None = None
    ) -> UnlearningProblem:
        """The :class:`UnlearningProblem` this solver works on."""
        return UnlearningProblem(
            constraints,
            formulation=self.formulation,
            multiplier_init=self.multiplier_init,
            penalty_init=self.penalty_init(),
            device=device,
        )

    def make_dual_optimizer(self, problem: UnlearningProblem) -> torch.optim.Optimizer | None:
        """Projected gradient *ascent* on λ: SGD with ``maximize=True``.

        Built from the multipliers in registration order (never ``dual_parameters()``), and
        never passed through ``accelerator.prepare``.
        """
        params = [p for _, p in problem.named_multiplier_parameters()]
        return torch.optim.SGD(params, lr=self.dual_lr, maximize=True)

    # -- schedule -------------------------------------------------------------------------
    def dual_is_live(self, step: int, epoch: int) -> bool:
        """Whether λ may move after optimiser step ``step`` (0-based) in epoch ``epoch``."""
        if self.timing == "frozen":
            return False
        return step >= self.warmup_steps and epoch >= self.warmup_epochs

    def describe(self) -> dict[str, object]:
        """Flat, loggable description (name and hyper-parameters)."""
        out: dict[str, object] = {"solver": self.name}
        for key, value in vars(self).items():
            out[f"solver.{key}"] = dict(value) if isinstance(value, Mapping) else value
        return out


def dual_step(
    problem: UnlearningProblem,
    dual_optimizer: torch.optim.Optimizer,
    mean_values: Mapping[str, torch.Tensor],
) -> None:
    """One projected dual step from the averaged, all-reduced constraint values.

    Builds the dual Lagrangian ``Σ_i λ_i · sg(g_i)`` (gradient ∂/∂λ_i = g_i), steps the
    optimiser (``maximize=True``) and projects every multiplier onto ``λ ≥ 0``.
    """
    state = problem.compute_cmp_state(None, mean_values, primal=False, dual=True)
    store = state.compute_dual_lagrangian()
    if store.lagrangian is None:
        return
    dual_optimizer.zero_grad(set_to_none=True)
    store.lagrangian.backward()
    dual_optimizer.step()
    for multiplier in problem.multipliers():
        multiplier.post_step_()
