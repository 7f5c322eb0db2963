"""What every primal-dual scheme shares: hyper-parameters, the step primitives, the dual step.

A solver is a small object that owns its update. The engine hands its [`Solver.step`][constrained_unlearn.solvers.Solver.step] a
[`Primitives`][constrained_unlearn.solvers.Primitives] object for one optimiser step over K micro-batches ``B_1..B_K``:

* ``observe(micro, backward)`` → [`Observation`][constrained_unlearn.solvers.Observation]: runs the terms on every micro-batch,
  (with ``backward``) back-propagates ``[L_f + Σ_i sg(λ_i) g_i] / K`` per micro-batch, and
  returns the means over the micro-batches, all-reduced over processes
  (``ḡ_i = all_reduce_mean(Σ_k g_i(B_k) / K)``): the same numbers on every rank;
* ``primal_step()``: clip the accumulated gradient, one optimiser step, ``zero_grad``, one
  learning-rate scheduler step; returns the gradient norm before clipping;
* ``dual_step(values)``: one projected dual step ``λ ← max(0, λ + η ḡ)`` from averaged values
  (a no-op in warm-up, with ``dual_update="epoch"`` and for solvers without a dual optimiser;
  at most once per optimiser step, counted from the last ``restore``);
* ``snapshot()`` / ``restore(snapshot)``: copies of θ and λ, for extrapolation.

The primitives enforce the invariants of the design: λ moves at most once per optimiser step, on
the all-reduced mean of the step's micro-batches; dual state is keyed by constraint name; cooper's
``roll()`` is never used. A solver only chooses the order of the primitives.

Shared hyper-parameters mean the same for every solver (λ₀, η, warm-up, dual-update cadence), so
the same ``solver_kwargs`` run under every solver name; solver-specific ones (penalty c, nuPI
gains) have defaults. Each hyper-parameter is validated once, here, and never rewritten.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import cooper
import torch

from constrained_unlearn.problem import ConstraintSpec, UnlearningProblem, check_multiplier_init

__all__ = [
    "SHARED_HYPERPARAMETERS",
    "Observation",
    "Primitives",
    "Solver",
    "StepResult",
    "dual_step",
]

SHARED_HYPERPARAMETERS: tuple[str, ...] = (
    "multiplier_init",
    "dual_lr",
    "warmup_steps",
    "warmup_epochs",
    "dual_update",
)
"""The hyper-parameters every solver has and means the same way (fields of [`Solver`][constrained_unlearn.solvers.Solver],
defined, defaulted and validated there only). Configs forward them by these names."""

MicroBatches = Sequence[tuple[Any, Any]]
"""The K ``(forget_batch, retain_batch)`` pairs of one optimiser step."""


@dataclass
class Observation:
    """Means over one step's micro-batches, all-reduced over processes.

    Attributes:
        objective: mean forget objective L_f.
        values: ``{name: 0-d float32 tensor}``, mean constrained quantity ``c_i`` (not the
            violation ``c_i − ε_i``).
        metrics: mean extra metrics of the terms function.
    """

    objective: float
    values: dict[str, torch.Tensor]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class StepResult:
    """What a solver's step reports: the observation at θ_t and the gradient norm."""

    observation: Observation
    grad_norm: float | None


class Primitives(Protocol):
    """The engine's primitives for one optimiser step (see the module docstring)."""

    @property
    def dual_moves(self) -> bool:
        """Whether λ moves inside this step (after warm-up, with ``dual_update="step"``)."""
        ...

    def observe(self, micro: MicroBatches, *, backward: bool) -> Observation: ...

    def primal_step(self, *, schedule: bool = True) -> float | None: ...

    def dual_step(self, values: Mapping[str, torch.Tensor]) -> None: ...

    def snapshot(self) -> Any: ...

    def restore(self, snapshot: Any) -> None: ...


@dataclass
class Solver:
    """Base class of the primal-dual schemes.

    Attributes:
        multiplier_init: λ₀ (one value or ``{constraint: value}``), ≥ 0. PDU uses 50–100 on
            LLMs because the margin loss is large.
        dual_lr: η, the dual step size, ≥ 0.
        warmup_steps: λ is frozen at λ₀ for this many optimiser steps.
        warmup_epochs: λ is frozen for this many epochs (both warm-ups apply).
        dual_update: ``"step"`` — one dual step per optimiser step; ``"epoch"`` — one per
            epoch, on the mean of the epoch's (live) per-step values.
    """

    name: ClassVar[str] = "base"
    extrapolates: ClassVar[bool] = False
    """Whether [`step`][constrained_unlearn.solvers.Solver.step] restores θ (snapshot/restore): impossible under DeepSpeed."""
    formulation: ClassVar[type[cooper.formulations.Formulation]] = cooper.formulations.Lagrangian
    dual_lr_may_be_none: ClassVar[bool] = False
    """Whether ``dual_lr=None`` means "the solver's own default step" (augmented Lagrangian)."""

    multiplier_init: float | Mapping[str, float] = 1.0
    dual_lr: float = 1.0
    warmup_steps: int = 0
    warmup_epochs: int = 0
    dual_update: Literal["step", "epoch"] = "step"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check hyper-parameters (never rewrites them); errors name the argument and the fix."""
        check_multiplier_init(self.multiplier_init)
        if self.dual_lr is None and not self.dual_lr_may_be_none:
            raise ValueError(
                f"dual_lr must be a finite number ≥ 0 for solver {self.name!r}, got None; "
                "give the dual step η (e.g. dual_lr=1.0)"
            )
        if self.dual_lr is not None:
            _check_number("dual_lr", self.dual_lr, minimum=0.0)
        for arg in ("warmup_steps", "warmup_epochs"):
            value = getattr(self, arg)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{arg} must be an integer ≥ 0, got {value!r}")
        if self.dual_update not in ("step", "epoch"):
            raise ValueError(f"dual_update must be 'step' or 'epoch', got {self.dual_update!r}")

    # -- construction ---------------------------------------------------------------------
    def penalty_init(self) -> float | None:
        """The penalty coefficient the formulation needs, if any."""
        return None

    @property
    def dual_step_size(self) -> float:
        """η, the step of the dual optimiser."""
        return float(self.dual_lr)

    def build_problem(
        self, constraints: list[ConstraintSpec], device: torch.device | str | None = None
    ) -> UnlearningProblem:
        """The [`UnlearningProblem`][constrained_unlearn.problem.UnlearningProblem] this solver works on."""
        return UnlearningProblem(
            constraints,
            formulation=self.formulation,
            multiplier_init=self.multiplier_init,
            penalty_init=self.penalty_init(),
            device=device,
        )

    def make_dual_optimizer(self, problem: UnlearningProblem) -> torch.optim.Optimizer | None:
        """Projected gradient *ascent* on λ: SGD with ``maximize=True`` and step η.

        Built from the multipliers in registration order (never ``dual_parameters()``), and
        never passed through ``accelerator.prepare``.
        """
        params = [p for _, p in problem.named_multiplier_parameters()]
        return torch.optim.SGD(params, lr=self.dual_step_size, maximize=True)

    # -- schedule -------------------------------------------------------------------------
    def dual_is_live(self, step: int, epoch: int) -> bool:
        """Whether λ may move after optimiser step ``step`` (0-based) in epoch ``epoch``."""
        return step >= self.warmup_steps and epoch >= self.warmup_epochs

    def step(self, ctx: Primitives, micro: MicroBatches) -> StepResult:
        """One optimiser step; simultaneous gradient descent–ascent unless overridden.

        θ_{t+1} = θ_t − α ∇_θ L(θ_t, λ_t)
        λ_{t+1} = max(0, λ_t + η ḡ(θ_t))
        """
        seen = ctx.observe(micro, backward=True)  # ∇_θ L(θ_t, λ_t) accumulated, ḡ(θ_t)
        grad_norm = ctx.primal_step()  # θ_{t+1}
        ctx.dual_step(seen.values)  # λ_{t+1} from ḡ(θ_t)
        return StepResult(seen, grad_norm)

    def describe(self) -> dict[str, object]:
        """Flat, loggable description (name and hyper-parameters)."""
        out: dict[str, object] = {"solver": self.name}
        for key, value in vars(self).items():
            out[f"solver.{key}"] = dict(value) if isinstance(value, Mapping) else value
        return out


def _check_number(arg: str, value: Any, *, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{arg} must be a finite number ≥ {minimum:g}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{arg} must be ≥ {minimum:g}, got {value}")


def dual_step(
    problem: UnlearningProblem,
    dual_optimizer: torch.optim.Optimizer,
    mean_values: Mapping[str, torch.Tensor],
) -> None:
    """One projected dual step from the averaged, all-reduced constraint values.

    Builds the dual Lagrangian ``Σ_i λ_i · sg(g_i)`` (gradient ∂/∂λ_i = g_i = c_i − ε_i), steps
    the optimiser (``maximize=True``) and projects every multiplier onto ``λ ≥ 0``.
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
