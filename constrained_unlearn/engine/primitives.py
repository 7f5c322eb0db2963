"""The engine's step primitives, on which every solver writes its update.

For one optimiser step over K micro-batch pairs ``B_1..B_K`` (invariants 1–3 of the design):

    observe(micro, backward):  for each k:  T_k = terms_fn(model, B_k)
                                            backward( [L_f(T_k) + Σ_i sg(λ_i) g_i(T_k)] / K )
                               ḡ_i = all_reduce_mean(Σ_k c_i(T_k) / K)    one host sync
    primal_step():             clip ‖∇θ‖, optimiser step, zero_grad, scheduler step
    dual_step(ḡ):              λ ← max(0, λ + η ḡ)   at most once per step, only when live
    snapshot() / restore(s):   copies of θ and λ (extrapolation)

DDP gradient sync happens only on the last micro-batch of a backward observation. λ is never
stepped per micro-batch, its optimiser is built by constraint name and cooper's ``roll()`` is
never used. The same ``all_reduce`` carries "some rank was asked to stop" so that all ranks agree
on the step at which a deferred interrupt checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator

from constrained_unlearn.engine.config import EngineConfig
from constrained_unlearn.engine.errors import NonFiniteError
from constrained_unlearn.engine.guards import check_terms
from constrained_unlearn.engine.interrupt import InterruptGuard
from constrained_unlearn.engine.terms import TermsFn
from constrained_unlearn.problem import UnlearningProblem
from constrained_unlearn.solvers import Observation, dual_step
from constrained_unlearn.solvers.base import MicroBatches

__all__ = ["Snapshot", "StepPrimitives"]


@dataclass
class Snapshot:
    """Copies of the trainable parameters θ and the multipliers λ."""

    theta: list[torch.Tensor]
    lambdas: list[torch.Tensor]
    dual_steps: int


class StepPrimitives:
    """Implements [`constrained_unlearn.solvers.Primitives`][constrained_unlearn.solvers.Primitives] for one engine.

    Call `begin` before every optimiser step; then hand the object to the solver.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        model: torch.nn.Module,
        terms_fn: TermsFn,
        problem: UnlearningProblem,
        optimizer: torch.optim.Optimizer,
        lr_scheduler: Any,
        dual_optimizer: torch.optim.Optimizer | None,
        config: EngineConfig,
        interrupt: InterruptGuard,
    ) -> None:
        self.accelerator = accelerator
        self.model = model
        self.terms_fn = terms_fn
        self.problem = problem
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.dual_optimizer = dual_optimizer
        self.max_grad_norm = config.max_grad_norm
        self.mixed_precision = config.mixed_precision
        self.interrupt = interrupt
        self.step_index = 0
        self._dual_moves = False
        self._dual_steps = 0

    @property
    def dual_moves(self) -> bool:
        """Whether λ moves inside this step (live, ``dual_update="step"``, a dual optimiser)."""
        return self._dual_moves

    def begin(self, step: int, *, dual_moves: bool) -> None:
        """Start optimiser step ``step``."""
        self.step_index = step
        self._dual_moves = dual_moves and self.dual_optimizer is not None
        self._dual_steps = 0

    # -- observation ----------------------------------------------------------------------
    def observe(self, micro: MicroBatches, *, backward: bool) -> Observation:
        """Run the micro-batches; means over them, all-reduced over processes.

        With ``backward`` the primal Lagrangian of each micro-batch, divided by K, is
        back-propagated (DDP gradient sync only on the last micro-batch).

        Raises:
            NonFiniteError: the mean objective or a mean constraint value is NaN/inf (the
                accumulated gradient is dropped; nothing was applied).
        """
        acc = self.accelerator
        names = self.problem.constraint_names
        k = len(micro)
        sums = torch.zeros(2 + len(names), device=acc.device, dtype=torch.float32)
        metric_sums: dict[str, Any] = {}  # floats, or detached tensors summed on the device
        with nullcontext() if backward else torch.no_grad():
            for i, (forget, retain) in enumerate(micro):
                sync = i == k - 1 or acc.num_processes == 1 or not backward
                with nullcontext() if sync else acc.no_sync(self.model):
                    terms = check_terms(self.terms_fn(self.model, forget, retain), names)
                    if backward:
                        state = self.problem.compute_cmp_state(
                            terms.objective.reshape(()),
                            {n: v.reshape(()) for n, v in terms.constraints.items()},
                            primal=True,
                            dual=False,
                        )
                        lagrangian = state.compute_primal_lagrangian().lagrangian
                        assert lagrangian is not None  # the objective is always observed
                        acc.backward(lagrangian / k)
                detached = [terms.objective.detach().float().reshape(1)]
                detached += [terms.constraints[n].detach().float().reshape(1) for n in names]
                sums[: 1 + len(names)] += torch.cat(detached)
                for key, value in terms.metrics.items():
                    if isinstance(value, torch.Tensor):  # no host sync per micro-batch
                        value = value.detach().float().reshape(())
                    else:
                        value = float(value)
                    metric_sums[key] = metric_sums.get(key, 0.0) + value
        sums[-1] = k * float(self.interrupt.requested)
        means = acc.reduce(sums / k, reduction="mean")
        values = means.tolist()  # the one host sync of the observation
        self.interrupt.agree(values[-1] > 0)
        if not math.isfinite(values[0]):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteError(self.step_index, "forget objective", values[0])
        for name, value in zip(names, values[1 : 1 + len(names)]):
            if not math.isfinite(value):
                self.optimizer.zero_grad(set_to_none=True)
                raise NonFiniteError(self.step_index, f"constraint {name!r}", value)
        tensor_keys = [key for key, v in metric_sums.items() if isinstance(v, torch.Tensor)]
        if tensor_keys:  # one sync for all tensor metrics of the observation
            synced = torch.stack([metric_sums[key] for key in tensor_keys]).tolist()
            metric_sums.update(zip(tensor_keys, synced))
        return Observation(
            objective=values[0],
            values={n: means[1 + i] for i, n in enumerate(names)},
            metrics={key: float(v) / k for key, v in metric_sums.items()},
        )

    # -- updates --------------------------------------------------------------------------
    def primal_step(self, *, schedule: bool = True) -> float | None:
        """Clip, step, ``zero_grad`` and (with ``schedule``) step the LR scheduler.

        Returns the gradient norm before clipping (``None`` without clipping).
        """
        self.interrupt.leave_boundary()
        grad_norm = None
        if self.max_grad_norm is not None:
            norm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            grad_norm = float(norm) if norm is not None else None
            if (
                grad_norm is not None
                and not math.isfinite(grad_norm)
                and self.mixed_precision != "fp16"  # fp16: the scaler skips the step
            ):
                self.optimizer.zero_grad(set_to_none=True)
                raise NonFiniteError(self.step_index, "gradient norm", grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if schedule:
            self.lr_scheduler.step()
        return grad_norm

    def dual_step(self, values: Mapping[str, torch.Tensor]) -> None:
        """One projected dual step from averaged values, when λ moves in this step.

        Raises:
            RuntimeError: a second dual step in the same optimiser step (without a
                `restore` in between): λ moves once per optimiser step.
        """
        if not self._dual_moves or self.dual_optimizer is None:
            return
        if self._dual_steps:
            raise RuntimeError(
                "a solver took a second dual step in one optimiser step; λ moves once per "
                "optimiser step (restore a snapshot before stepping λ again)"
            )
        self.interrupt.leave_boundary()
        dual_step(self.problem, self.dual_optimizer, values)
        self._dual_steps += 1

    def epoch_dual_step(self, means: Mapping[str, torch.Tensor]) -> None:
        """The dual step of ``dual_update="epoch"``, on the mean of the epoch's values."""
        if self.dual_optimizer is not None:
            self.interrupt.leave_boundary()
            dual_step(self.problem, self.dual_optimizer, means)

    def _trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def snapshot(self) -> Snapshot:
        """Copies of θ (trainable parameters) and λ: one extra copy of the trainable weights."""
        return Snapshot(
            theta=[p.detach().clone() for p in self._trainable()],
            lambdas=[p.detach().clone() for _, p in self.problem.named_multiplier_parameters()],
            dual_steps=self._dual_steps,
        )

    def restore(self, snapshot: Snapshot) -> None:
        """Copy θ and λ back from ``snapshot`` (the optimisers' states are not rewound)."""
        self.interrupt.leave_boundary()
        with torch.no_grad():
            for p, saved in zip(self._trainable(), snapshot.theta):
                p.copy_(saved)
            for (_, p), saved in zip(self.problem.named_multiplier_parameters(), snapshot.lambdas):
                p.copy_(saved)
        self._dual_steps = snapshot.dual_steps
