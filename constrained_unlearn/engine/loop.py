"""The unlearning engine: primal-dual optimisation on accelerate.

One optimiser step over K micro-batch pairs (invariants 1 and 3 of the design):

    for each micro-batch k:  T_k = terms_fn(model, f_k, r_k)
                             backward( [L_f(T_k) + Σ_i sg(λ_i) g_i(T_k)] / K )
                             s_i += g_i(T_k).detach()
    ḡ_i = all_reduce_mean(s_i / K)          same on every rank
    θ ← primal optimiser step (clipped)      once
    λ ← dual step on ḡ                       once, never per micro-batch

The engine knows no model family: it only calls ``terms_fn``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device, set_seed
from tqdm.auto import tqdm

from constrained_unlearn.engine.config import EngineConfig
from constrained_unlearn.engine.data import PairedData
from constrained_unlearn.engine.errors import (
    ConstraintInfeasibleWarning,
    NonFiniteError,
    TermsError,
)
from constrained_unlearn.engine.history import Callback, History, StepRecord
from constrained_unlearn.engine.schedule import make_lr_scheduler
from constrained_unlearn.engine.terms import Terms, TermsFn
from constrained_unlearn.problem import ConstraintSpec, UnlearningProblem
from constrained_unlearn.solvers import Solver, dual_step, make_solver

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


class UnlearningEngine:
    """Runs ``min L_f s.t. c_i ≤ ε_i`` with any solver.

    Args:
        model: the model to unlearn (any ``nn.Module``).
        terms_fn: ``(model, forget_batch, retain_batch) -> Terms``.
        data: the paired forget/retain data.
        constraints: constraint specifications; default one calibrated ``"retain"`` constraint.
        solver: a solver name (``"gda"``, ``"alternating-gda"``, ``"extragradient"``,
            ``"augmented-lagrangian"``, ``"nupi"``, ``"penalty"``) or a :class:`Solver`.
        solver_kwargs: hyper-parameters when ``solver`` is a name.
        optimizer: a primal optimiser over ``model``'s parameters, or a factory taking the
            trainable parameters; default ``AdamW(lr=lr)``.
        lr: learning rate of the default optimiser.
        config: loop settings.
        accelerator: an existing ``Accelerator`` (default: one built from ``config``).
        callbacks: :class:`Callback` objects.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        terms_fn: TermsFn,
        data: PairedData,
        *,
        constraints: Sequence[ConstraintSpec] = (ConstraintSpec("retain"),),
        solver: str | Solver = "gda",
        solver_kwargs: dict[str, Any] | None = None,
        optimizer: torch.optim.Optimizer | OptimizerFactory | None = None,
        lr: float = 1e-5,
        config: EngineConfig | None = None,
        accelerator: Accelerator | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        if not callable(terms_fn):
            raise TypeError(
                "terms_fn must be callable: (model, forget_batch, retain_batch) -> Terms"
            )
        if not isinstance(data, PairedData):
            raise TypeError(f"data must be a PairedData, got {type(data).__name__}")
        self.config = config or EngineConfig()
        self.solver = make_solver(solver, **(solver_kwargs or {}))
        self.accelerator = accelerator or Accelerator(
            mixed_precision=self.config.mixed_precision, cpu=self.config.cpu
        )
        self.terms_fn = terms_fn
        self.data = data
        self.callbacks = list(callbacks)
        self.problem: UnlearningProblem = self.solver.build_problem(
            list(constraints), device=self.accelerator.device
        )
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("the model has no trainable parameter (all requires_grad=False)")
        if optimizer is None:
            if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
                raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
            optimizer = torch.optim.AdamW(trainable, lr=lr)
        elif not isinstance(optimizer, torch.optim.Optimizer):
            optimizer = optimizer(trainable)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.dual_optimizer = self.solver.make_dual_optimizer(self.problem)
        self.history = History()
        self.global_step = 0
        self.epoch = 0
        self.initial_values: dict[str, float] = {}
        self._violated_for = {name: 0 for name in self.problem.constraint_names}
        self._warned: set[str] = set()
        world = self.accelerator.num_processes
        self.steps_per_epoch = math.ceil(
            data.batches_per_epoch(world) / self.config.gradient_accumulation_steps
        )
        total = self.config.epochs * self.steps_per_epoch
        self.total_steps = min(total, self.config.max_steps or total)
        self.lr_scheduler = make_lr_scheduler(
            self.optimizer, self.config.lr_scheduler, self.total_steps, self.config.lr_warmup_ratio
        )

    # ------------------------------------------------------------------------------------
    @property
    def unwrapped_model(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def _pairs(self, epoch: int, start: int = 0):
        acc = self.accelerator
        for forget, retain in self.data.iter_epoch(
            epoch, acc.process_index, acc.num_processes, start=start
        ):
            yield send_to_device(forget, acc.device), send_to_device(retain, acc.device)

    def _check_terms(self, terms: Any) -> Terms:
        if not isinstance(terms, Terms):
            raise TermsError(
                f"terms_fn must return constrained_unlearn.engine.Terms, got {type(terms).__name__}"
            )
        if not isinstance(terms.objective, torch.Tensor) or terms.objective.numel() != 1:
            shape = getattr(terms.objective, "shape", type(terms.objective).__name__)
            raise TermsError(
                f"the forget objective must be a scalar tensor, got shape {shape}; "
                "reduce it (e.g. .mean()) inside the terms function"
            )
        names = self.problem.constraint_names
        if set(terms.constraints) != set(names):
            raise TermsError(
                f"terms_fn returned constraint values {sorted(terms.constraints)}, "
                f"but the problem's constraints are {names}"
            )
        for name, value in terms.constraints.items():
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                shape = getattr(value, "shape", type(value).__name__)
                raise TermsError(
                    f"constraint {name!r} must be a scalar tensor, got shape {shape}; "
                    "reduce it inside the terms function"
                )
        return terms

    def _observe(
        self, micro: list[tuple[Any, Any]], *, backward: bool
    ) -> tuple[float, dict[str, torch.Tensor], dict[str, float]]:
        """Run the micro-batches; returns (mean objective, {name: mean value}, mean metrics).

        With ``backward`` the primal Lagrangian of each micro-batch, divided by K, is
        back-propagated (DDP gradient sync only on the last micro-batch). Means are over the
        micro-batches and then all-reduced over processes, so every rank gets the same numbers.
        """
        acc = self.accelerator
        names = self.problem.constraint_names
        k = len(micro)
        sums = torch.zeros(1 + len(names), device=acc.device, dtype=torch.float32)
        metric_sums: dict[str, float] = {}
        grad_ctx = nullcontext() if backward else torch.no_grad()
        with grad_ctx:
            for i, (forget, retain) in enumerate(micro):
                sync = i == k - 1 or acc.num_processes == 1 or not backward
                with nullcontext() if sync else acc.no_sync(self.model):
                    terms = self._check_terms(self.terms_fn(self.model, forget, retain))
                    if backward:
                        state = self.problem.compute_cmp_state(
                            terms.objective.reshape(()),
                            {n: v.reshape(()) for n, v in terms.constraints.items()},
                            primal=True,
                            dual=False,
                        )
                        acc.backward(state.compute_primal_lagrangian().lagrangian / k)
                detached = [terms.objective.detach().float().reshape(1)]
                detached += [terms.constraints[n].detach().float().reshape(1) for n in names]
                sums += torch.cat(detached)
                for key, value in terms.metrics.items():
                    metric_sums[key] = metric_sums.get(key, 0.0) + float(value)
        means = acc.reduce(sums / k, reduction="mean")
        values = means.tolist()  # the one host sync of the step
        bounds = self.problem.require_bounds()
        step = self.global_step
        if not math.isfinite(values[0]):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteError(step, "forget objective", values[0])
        for name, value in zip(names, values[1:]):
            if not math.isfinite(value):
                self.optimizer.zero_grad(set_to_none=True)
                raise NonFiniteError(step, f"constraint {name!r}", value)
        del bounds
        mean_values = {n: means[1 + i] for i, n in enumerate(names)}
        return values[0], mean_values, {key: v / k for key, v in metric_sums.items()}

    def _primal_step(self, *, schedule: bool = True) -> float | None:
        grad_norm = None
        if self.config.max_grad_norm is not None:
            norm = self.accelerator.clip_grad_norm_(
                self.model.parameters(), self.config.max_grad_norm
            )
            grad_norm = float(norm) if norm is not None else None
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if schedule:
            self.lr_scheduler.step()
        return grad_norm

    def _dual(self, mean_values: dict[str, torch.Tensor]) -> None:
        if self.dual_optimizer is not None:
            dual_step(self.problem, self.dual_optimizer, mean_values)

    def _optimizer_step(self, micro: list[tuple[Any, Any]], dual_per_step: bool) -> StepRecord:
        solver = self.solver
        live = solver.dual_is_live(self.global_step, self.epoch)
        lr = float(self.optimizer.param_groups[0]["lr"])
        objective, values, metrics = self._observe(micro, backward=True)
        if solver.extragradient:
            params = [p for p in self.model.parameters() if p.requires_grad]
            theta = [p.detach().clone() for p in params]
            lambdas = [p.detach().clone() for _, p in self.problem.named_multiplier_parameters()]
            self._primal_step(schedule=False)  # θ_{t+½}
            if live and dual_per_step:
                self._dual(values)  # λ_{t+½}
            _, half_values, _ = self._observe(micro, backward=True)
            with torch.no_grad():
                for p, saved in zip(params, theta):
                    p.copy_(saved)
                for (_, p), saved in zip(self.problem.named_multiplier_parameters(), lambdas):
                    p.copy_(saved)
            del theta, lambdas
            grad_norm = self._primal_step()
            dual_values = half_values
        else:
            grad_norm = self._primal_step()
            dual_values = values
            if solver.timing == "primal-then-dual" and live and dual_per_step:
                _, dual_values, _ = self._observe(micro, backward=False)
        if live and dual_per_step:
            self._dual(dual_values)
        bounds = self.problem.require_bounds()
        plain_values = {n: float(v) for n, v in values.items()}
        record = StepRecord(
            step=self.global_step,
            epoch=self.epoch,
            objective=objective,
            values=plain_values,
            violations={n: v - bounds[n] for n, v in plain_values.items()},
            multipliers=self.problem.multiplier_values(),
            lr=lr,
            grad_norm=grad_norm,
            dual_live=live,
            metrics=metrics,
        )
        self._monitor(record)
        return record

    def _monitor(self, record: StepRecord) -> None:
        patience = self.config.infeasible_patience
        for name, violation in record.violations.items():
            self._violated_for[name] = (
                self._violated_for[name] + 1 if record.dual_live and violation > 0 else 0
            )
            if patience and self._violated_for[name] >= patience and name not in self._warned:
                self._warned.add(name)
                warnings.warn(
                    f"constraint {name!r} has been violated for {self._violated_for[name]} "
                    f"consecutive steps after warm-up (value {record.values[name]:.4g} > bound "
                    f"{record.values[name] - violation:.4g}, λ = {record.multipliers.get(name, float('nan')):.4g}). "
                    "Raise the bound (epsilon / slack), lower the learning rate, or raise the dual lr.",
                    ConstraintInfeasibleWarning,
                    stacklevel=3,
                )
        limit = self.config.multiplier_limit
        for name, lam in record.multipliers.items():
            key = f"{name}/limit"
            if limit is not None and lam > limit and key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"multiplier of {name!r} reached {lam:.4g} > {limit:.4g}: the constraint is "
                    "probably infeasible at this learning rate; raise its bound or lower the "
                    "learning rate.",
                    ConstraintInfeasibleWarning,
                    stacklevel=3,
                )

    # ------------------------------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self, max_batches: int | None = None) -> dict[str, float]:
        """Measure every constraint at the current parameters and set uncalibrated bounds.

        The measurement is the mean over up to ``max_batches`` micro-batch pairs of epoch 0,
        all-reduced across processes. Warns (:class:`InfeasibleStartWarning`) when a given
        bound is already violated.
        """
        names = self.problem.constraint_names
        sums = torch.zeros(len(names), device=self.accelerator.device)
        count = 0
        was_training = self.model.training
        self.model.eval()
        for forget, retain in self._pairs(0):
            terms = self._check_terms(self.terms_fn(self.model, forget, retain))
            sums += torch.stack([terms.constraints[n].detach().float().reshape(()) for n in names])
            count += 1
            if max_batches is not None and count >= max_batches:
                break
        self.model.train(was_training)
        means = self.accelerator.reduce(sums / count, reduction="mean").tolist()
        self.initial_values = dict(zip(names, means))
        self.problem.calibrate(self.initial_values)
        return self.initial_values

    def fit(self) -> History:
        """Train for ``config.epochs`` epochs (or ``config.max_steps`` steps)."""
        cfg = self.config
        set_seed(cfg.seed)
        needs_calibration = any(b is None for b in self.problem.bounds.values())
        self.calibrate(None if needs_calibration else 4)
        self.model.train()
        for callback in self.callbacks:
            callback.on_train_begin(self)
        k = cfg.gradient_accumulation_steps
        dual_per_step = self.solver.dual_update == "step"
        bar = tqdm(
            total=self.total_steps,
            desc=f"unlearning ({self.solver.name})",
            disable=not (cfg.progress and self.accelerator.is_main_process),
            dynamic_ncols=True,
        )
        done = False
        for epoch in range(self.epoch, cfg.epochs):
            self.epoch = epoch
            epoch_sums: dict[str, torch.Tensor] = {}
            epoch_steps = 0
            micro: list[tuple[Any, Any]] = []
            pairs = list(self._pairs(epoch))
            for index, pair in enumerate(pairs):
                micro.append(pair)
                if len(micro) < k and index < len(pairs) - 1:
                    continue
                live = self.solver.dual_is_live(self.global_step, epoch)
                record = self._optimizer_step(micro, dual_per_step)
                micro = []
                if not dual_per_step and live:
                    for name in self.problem.constraint_names:
                        value = torch.tensor(record.values[name], device=self.accelerator.device)
                        epoch_sums[name] = epoch_sums.get(name, 0.0) + value
                    epoch_steps += 1
                self.history.records.append(record)
                self.global_step += 1
                bar.update(1)
                bar.set_postfix(_postfix(record), refresh=False)
                for callback in self.callbacks:
                    callback.on_step_end(self, record)
                if self.global_step >= self.total_steps:
                    done = True
                    break
            if epoch_steps and self.dual_optimizer is not None:
                self._dual({n: s / epoch_steps for n, s in epoch_sums.items()})
            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch)
            if done:
                break
        bar.close()
        for callback in self.callbacks:
            callback.on_train_end(self, self.history)
        return self.history


def _postfix(record: StepRecord) -> dict[str, str]:
    out = {"L_f": f"{record.objective:.3g}"}
    for name, value in record.values.items():
        out[name] = f"{value:.3g}"
        if name in record.multipliers:
            out[f"λ_{name}"] = f"{record.multipliers[name]:.3g}"
    return out
