"""The unlearning engine: primal-dual optimisation on accelerate.

One optimiser step over K micro-batch pairs (invariants 1 and 3 of the design):

    for each micro-batch k:  T_k = terms_fn(model, f_k, r_k)
                             backward( [L_f(T_k) + Σ_i sg(λ_i) g_i(T_k)] / K )
                             s_i += g_i(T_k).detach()
    ḡ_i = all_reduce_mean(s_i / K)          same on every rank
    θ ← primal optimiser step (clipped)      once
    λ ← dual step on ḡ                       once, never per micro-batch

The engine knows no model family: it only calls ``terms_fn``.

Checkpoints (:mod:`constrained_unlearn.engine.checkpoint`) are taken at optimiser-step
boundaries: every ``save_every`` steps, at the end, and on Ctrl-C. While checkpointing is on,
the first SIGINT (or SIGTERM, e.g. a preemption) only asks the run to stop: the current step finishes (all ranks agree on the
step through the step's all-reduce), a checkpoint is written and ``KeyboardInterrupt`` is
raised; a second SIGINT interrupts at once. A resumed run (``resume=True``) continues from the
newest complete checkpoint with the same weights, optimiser and dual state, RNG, data position
and history, and ends bit-identical to an uninterrupted run on the same hardware.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, send_to_device, set_seed
from tqdm.auto import tqdm

from constrained_unlearn.engine import checkpoint as ckpt
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

logger = logging.getLogger(__name__)


def _make_accelerator(config: EngineConfig) -> Accelerator:
    """An ``Accelerator`` for ``config``, with an actionable error when the process disagrees.

    accelerate fixes the mixed precision and the device once per process (its state is a
    process-wide singleton), so a second engine with another ``mixed_precision`` or ``cpu``
    cannot get its own.
    """
    try:
        return Accelerator(mixed_precision=config.mixed_precision, cpu=config.cpu)
    except ValueError as error:
        if "already been initialized" not in str(error):
            raise
        from accelerate.state import AcceleratorState

        current = AcceleratorState._shared_state.get("_mixed_precision", "unknown")
        raise ValueError(
            f"EngineConfig(mixed_precision={config.mixed_precision!r}, cpu={config.cpu}) "
            f"conflicts with the accelerate state this process already has "
            f"(mixed_precision={current!r}): accelerate fixes the precision and the device once "
            "per process. Use the same mixed_precision and cpu for every engine in this process, "
            "pass accelerator= to share one, or run each setting in its own process"
        ) from error


def _check_framework(accelerator: Accelerator, config: EngineConfig, solver: Solver) -> None:
    """Refuse the combinations the engine's step cannot run correctly, before any compute.

    Under DeepSpeed the optimiser step belongs to DeepSpeed's engine: it steps on its own
    accumulation boundary (the engine accumulates micro-batches itself, so with K > 1 it would
    step every micro-batch) and keeps the fp32 master weights inside, where extragradient's
    restore of θ_t cannot reach.
    """
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    if config.gradient_accumulation_steps != 1:
        raise ValueError(
            f"gradient_accumulation_steps={config.gradient_accumulation_steps} is not supported "
            "under DeepSpeed (DeepSpeed would step on every micro-batch); set it to 1 and get "
            "the effective batch from the per-device batch size and the number of GPUs, or use "
            "FSDP/DDP, which accumulate correctly"
        )
    if solver.extragradient:
        raise ValueError(
            f"solver {solver.name!r} extrapolates θ and restores it, which DeepSpeed's "
            "internal fp32 master weights do not allow; use 'gda', 'alternating-gda', 'nupi' "
            "or 'augmented-lagrangian' under DeepSpeed, or run extragradient with FSDP/DDP"
        )


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
        run_config: the resolved configuration of the whole run (any JSON-serialisable dict;
            other values are stored as strings), written into every checkpoint's
            ``config.json``.
        run_signature: what determines the run beyond the engine's own settings (method and
            its options, model id, max_length …), flat ``{key: JSON value}``; stored in every
            checkpoint and compared on resume (``EngineConfig.resume_overrides`` lists keys
            that may differ).

    Attributes:
        last_checkpoint: the newest checkpoint this engine wrote or resumed from.
        resumed_from: the checkpoint :meth:`fit` resumed from (``None`` for a fresh start).
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
        run_config: Mapping[str, Any] | None = None,
        run_signature: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(terms_fn):
            raise TypeError(
                "terms_fn must be callable: (model, forget_batch, retain_batch) -> Terms"
            )
        if not isinstance(data, PairedData):
            raise TypeError(f"data must be a PairedData, got {type(data).__name__}")
        self.config = config or EngineConfig()
        self.solver = make_solver(solver, **(solver_kwargs or {}))
        self.accelerator = accelerator or _make_accelerator(self.config)
        _check_framework(self.accelerator, self.config, self.solver)
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
        self.run_config: dict[str, Any] = dict(run_config or {})
        self.run_signature: dict[str, Any] = dict(run_signature or {})
        self.last_checkpoint: Path | None = None
        self.resumed_from: Path | None = None
        # position of the run: micro-batches consumed in self.epoch, whether its end (epoch
        # dual step, callbacks) is done, and the per-epoch dual sums ("epoch" dual updates)
        self._position = 0
        self._epoch_closed = False
        self._epoch_sums: dict[str, torch.Tensor] = {}
        self._epoch_steps = 0
        # interruption: the state is at a step boundary (nothing half-applied) while
        # _consistent; _boundary_rng is this rank's RNG at that boundary
        self._consistent = True
        self._boundary_rng: dict[str, Any] | None = None
        self._pending_rng: dict[str, Any] | None = None
        self._interrupt_requested = False
        self._stop_agreed = False
        self._saved_key: tuple[int, int, int] | None = None  # state of the last checkpoint

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
        sums = torch.zeros(2 + len(names), device=acc.device, dtype=torch.float32)
        metric_sums: dict[str, Any] = {}  # floats, or detached tensors summed on the device
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
        # the last entry carries "a rank was asked to stop" (SIGINT), so all ranks agree on the
        # step at which to checkpoint and stop without another collective
        sums[-1] = k * float(self._interrupt_requested)
        means = acc.reduce(sums / k, reduction="mean")
        values = means.tolist()  # the one host sync of the step
        if values[-1] > 0:
            self._stop_agreed = True
        bounds = self.problem.require_bounds()
        step = self.global_step
        if not math.isfinite(values[0]):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteError(step, "forget objective", values[0])
        for name, value in zip(names, values[1 : 1 + len(names)]):
            if not math.isfinite(value):
                self.optimizer.zero_grad(set_to_none=True)
                raise NonFiniteError(step, f"constraint {name!r}", value)
        del bounds
        mean_values = {n: means[1 + i] for i, n in enumerate(names)}
        tensor_keys = [key for key, v in metric_sums.items() if isinstance(v, torch.Tensor)]
        if tensor_keys:  # one sync for all tensor metrics of the step
            synced = torch.stack([metric_sums[key] for key in tensor_keys]).tolist()
            metric_sums.update(zip(tensor_keys, synced))
        return values[0], mean_values, {key: float(v) / k for key, v in metric_sums.items()}

    def _primal_step(self, *, schedule: bool = True) -> float | None:
        grad_norm = None
        if self.config.max_grad_norm is not None:
            norm = self.accelerator.clip_grad_norm_(
                self.model.parameters(), self.config.max_grad_norm
            )
            grad_norm = float(norm) if norm is not None else None
            if (
                grad_norm is not None
                and not math.isfinite(grad_norm)
                and self.config.mixed_precision != "fp16"  # fp16: the scaler skips the step
            ):
                self.optimizer.zero_grad(set_to_none=True)
                raise NonFiniteError(self.global_step, "gradient norm", grad_norm)
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
        self._consistent = False  # from here on parameters/λ change: no checkpoint until done
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

    def fit(self, resume: bool | str | os.PathLike[str] | None = None) -> History:
        """Train for ``config.epochs`` epochs (or ``config.max_steps`` steps).

        Args:
            resume: ``True`` continues from the newest complete checkpoint in
                ``config.checkpoint_dir`` (fresh start if there is none, incomplete ones are
                reported and ignored); a path continues from that checkpoint; ``False`` starts
                fresh; ``None`` (default) uses ``config.resume``.

        Returns:
            The history of the whole run, including the steps before a resume.

        Raises:
            KeyboardInterrupt: after Ctrl-C, once the checkpoint is written (with
                ``checkpoint_dir`` set).
            NonFiniteError: a loss, violation, gradient norm or parameter became NaN/inf; the
                step is not applied and no checkpoint is written, so the last checkpoint is
                the last good state (its path is in the error message).
        """
        cfg = self.config
        resume = cfg.resume if resume is None else resume
        set_seed(cfg.seed)
        if resume is not False and resume is not None:
            self._resume(resume)
        else:
            self._warn_existing_checkpoints()
        if self.resumed_from is None:
            self.calibrate(cfg.calibration_batches)
        self.model.train()
        for callback in self.callbacks:
            callback.on_train_begin(self)
        if self._pending_rng is not None:  # restored as late as possible: exact RNG stream
            ckpt.restore_rng_state(self._pending_rng)
            self._pending_rng = None
        bar = tqdm(
            total=self.total_steps,
            initial=min(self.global_step, self.total_steps),
            desc=f"unlearning ({self.solver.name})",
            disable=not (cfg.progress and self.accelerator.is_main_process),
            dynamic_ncols=True,
        )
        try:
            with self._deferred_interrupt():
                self._mark_boundary()
                self._train(bar)
        except KeyboardInterrupt as err:
            if not isinstance(err, _Interrupted):
                self._save_after_interrupt()
            raise
        except NonFiniteError as err:
            if self.last_checkpoint is not None:
                err.checkpoint = str(self.last_checkpoint)
                err.args = (f"{err.args[0]} The last good checkpoint is {self.last_checkpoint}.",)
            raise
        finally:
            bar.close()
        if cfg.checkpoint_dir is not None and cfg.save_final and self._saved_key != self._key():
            self._save()
        for callback in self.callbacks:
            callback.on_train_end(self, self.history)
        return self.history

    def _train(self, bar: tqdm) -> None:
        cfg = self.config
        k = cfg.gradient_accumulation_steps
        dual_per_step = self.solver.dual_update == "step"
        first_epoch = self.epoch + 1 if self._epoch_closed else self.epoch
        for epoch in range(first_epoch, cfg.epochs):
            if self.global_step >= self.total_steps and self._position == 0:
                break  # max_steps reached at the end of the previous epoch
            if epoch != self.epoch or self._epoch_closed:
                self.epoch, self._position, self._epoch_closed = epoch, 0, False
            pairs = list(self._pairs(epoch, start=self._position))
            for first in range(0, len(pairs), k):
                if self.global_step >= self.total_steps:
                    break
                micro = pairs[first : first + k]
                live = self.solver.dual_is_live(self.global_step, epoch)
                record = self._optimizer_step(micro, dual_per_step)
                if not dual_per_step and live:
                    for name in self.problem.constraint_names:
                        value = torch.tensor(record.values[name], device=self.accelerator.device)
                        self._epoch_sums[name] = self._epoch_sums.get(name, 0.0) + value
                    self._epoch_steps += 1
                self.history.records.append(record)
                self.global_step += 1
                self._position += len(micro)
                self._mark_boundary()
                bar.update(1)
                bar.set_postfix(_postfix(record), refresh=False)
                for callback in self.callbacks:
                    callback.on_step_end(self, record)
                self._after_step()
            self._consistent = False
            if self._epoch_steps and self.dual_optimizer is not None:
                n = self._epoch_steps
                self._dual({name: s / n for name, s in self._epoch_sums.items()})
            self._epoch_sums, self._epoch_steps = {}, 0
            self._epoch_closed = True
            self._mark_boundary()
            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch)
            if self.global_step >= self.total_steps:
                break

    # -- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self, directory: str | os.PathLike[str] | None = None) -> Path:
        """Write ``<directory>/checkpoint-<global_step>`` now (call it on every rank).

        ``directory`` defaults to ``config.checkpoint_dir``; ``config.keep_last`` applies. Call
        it between optimiser steps (e.g. from :meth:`Callback.on_step_end`) or after :meth:`fit`.
        """
        target = directory if directory is not None else self.config.checkpoint_dir
        if target is None:
            raise ValueError("no checkpoint directory: pass one or set EngineConfig.checkpoint_dir")
        path = ckpt.save_checkpoint(self, target, keep_last=self.config.keep_last)
        self.last_checkpoint = path
        self._saved_key = self._key()
        return path

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore weights, optimiser, dual state, position and history from a checkpoint.

        The saved RNG state is applied when :meth:`fit` continues. Refuses (``CheckpointError``)
        a checkpoint of another constraint set, solver, process count, accumulation or data.
        """
        ckpt.load_checkpoint(self, path)
        self.last_checkpoint = self.resumed_from = Path(path)
        self._saved_key = self._key()

    def _resume(self, resume: bool | str | os.PathLike[str]) -> None:
        if resume is False:
            return
        if resume is True:
            if self.config.checkpoint_dir is None:
                raise ValueError(
                    "resume=True looks in checkpoint_dir, which is not set; set "
                    "EngineConfig.checkpoint_dir or pass the checkpoint path as resume"
                )
            path = ckpt.latest_checkpoint(
                self.config.checkpoint_dir, report=self.accelerator.is_main_process
            )
            if path is None:
                logger.info(
                    "resume: no complete checkpoint in %s, starting fresh",
                    self.config.checkpoint_dir,
                )
                return
        else:
            path = Path(resume)
        self.load_checkpoint(path)
        logger.info("resumed from %s at optimiser step %d", path, self.global_step)

    def _warn_existing_checkpoints(self) -> None:
        directory = self.config.checkpoint_dir
        if directory is None or not self.accelerator.is_main_process:
            return
        complete, _ = ckpt.list_checkpoints(directory)
        if complete:
            warnings.warn(
                f"{directory} already holds checkpoints of another run (newest {complete[-1]}); "
                "this fresh run will write next to them and may replace or prune them. Pass "
                "resume=True to continue that run, or use another checkpoint_dir.",
                ckpt.CheckpointWarning,
                stacklevel=3,
            )

    def _save(self, rng_state: Mapping[str, Any] | None = None) -> Path:
        directory = self.config.checkpoint_dir
        if directory is None:  # callers save only with a checkpoint_dir
            raise RuntimeError("no checkpoint_dir to save to; set EngineConfig.checkpoint_dir")
        path = ckpt.save_checkpoint(
            self, directory, rng_state=rng_state, keep_last=self.config.keep_last
        )
        self.last_checkpoint = path
        self._saved_key = self._key()
        return path

    def _key(self) -> tuple[int, int, int]:
        """(global step, epoch, position) of the resume point: equal keys, equal checkpoints."""
        state = self._trainer_state()
        return (state["global_step"], state["epoch"], state["position"])

    def _after_step(self) -> None:
        """Periodic checkpoint; checkpoint and stop when all ranks agreed on an interrupt."""
        cfg = self.config
        saved = False
        if cfg.save_every is not None and self.global_step % cfg.save_every == 0:
            self._save()
            saved = True
        single = self.accelerator.num_processes == 1
        if self._stop_agreed or (single and self._interrupt_requested):
            if not saved:
                self._save()
            self._interrupt_requested = self._stop_agreed = False
            raise _Interrupted(f"interrupted; checkpoint written to {self.last_checkpoint}")

    def _save_after_interrupt(self) -> None:
        """After a KeyboardInterrupt: write the last step boundary if that is still possible."""
        if self.config.checkpoint_dir is None:
            return
        if self.accelerator.num_processes > 1:
            logger.warning(
                "KeyboardInterrupt outside the agreed stop of a multi-process run: no checkpoint "
                "written (ranks may be at different steps); the last one is %s",
                self.last_checkpoint,
            )
            return
        if not self._consistent:
            logger.warning(
                "interrupted while an optimiser step was being applied: no checkpoint written; "
                "the last one is %s",
                self.last_checkpoint,
            )
            return
        path = self._save(rng_state=self._boundary_rng)
        logger.warning("interrupted; checkpoint of step %d written to %s", self.global_step, path)

    def _mark_boundary(self) -> None:
        """The state is between optimiser steps; remember this rank's RNG for an interrupt."""
        self._consistent = True
        if self.config.checkpoint_dir is not None:
            self._boundary_rng = ckpt.capture_rng_state()

    @contextmanager
    def _deferred_interrupt(self) -> Iterator[None]:
        """First SIGINT or SIGTERM: finish the step, checkpoint, stop. Second: at once.

        SIGTERM is what SLURM preemption and torchrun's agent send before killing a job; it is
        handled like Ctrl-C so a preempted run leaves a checkpoint to resume from.
        """
        on_main_thread = threading.current_thread() is threading.main_thread()
        if self.config.checkpoint_dir is None or not on_main_thread:  # signals: main thread only
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._interrupt_requested:
                raise KeyboardInterrupt
            self._interrupt_requested = True
            logger.warning(
                "interrupt received: finishing the current optimiser step, then writing a "
                "checkpoint; press Ctrl-C again to stop immediately"
            )

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            self._interrupt_requested = self._stop_agreed = False

    def _check_finite_state(self) -> None:
        """Raise :class:`NonFiniteError` if a parameter or multiplier is NaN/inf."""
        params = [(n, p) for n, p in self.unwrapped_model.named_parameters() if p.requires_grad]
        params += [(f"multiplier {n!r}", p) for n, p in self.problem.named_multiplier_parameters()]
        if not params:
            return
        flags = torch.stack([torch.isfinite(p.detach()).all() for _, p in params]).tolist()
        for (name, p), ok in zip(params, flags):
            if not ok:
                bad = p.detach()[~torch.isfinite(p.detach())].flatten()[0].item()
                raise NonFiniteError(self.global_step, f"parameter {name}", bad)

    def _trainer_state(self) -> dict[str, Any]:
        """The JSON part of a checkpoint: where the run is and what it was run with."""
        data = self.data
        if self._epoch_closed:
            epoch, position = self.epoch + 1, 0
        else:
            epoch, position = self.epoch, self._position
        return {
            "format_version": ckpt.FORMAT_VERSION,
            "global_step": self.global_step,
            "epoch": epoch,
            "position": position,
            "total_steps": self.total_steps,
            "epoch_dual_sums": {n: float(v) for n, v in self._epoch_sums.items()},
            "epoch_dual_steps": self._epoch_steps,
            "violated_for": dict(self._violated_for),
            "warned": sorted(self._warned),
            "world_size": self.accelerator.num_processes,
            "gradient_accumulation_steps": self.config.gradient_accumulation_steps,
            "solver": self.solver.name,
            "constraint_names": self.problem.constraint_names,
            "data": {
                "forget_size": len(data.forget),  # type: ignore[arg-type]
                "retain_size": len(data.retain),  # type: ignore[arg-type]
                "batch_size": data.batch_size,
                "retain_batch_size": data.retain_batch_size,
                "shuffle": data.shuffle,
                "seed": data.seed,
            },
        }

    def _load_trainer_state(self, state: Mapping[str, Any]) -> None:
        self.global_step = int(state["global_step"])
        self.epoch = int(state["epoch"])
        self._position = int(state["position"])
        self._epoch_closed = False
        device = self.accelerator.device
        self._epoch_sums = {
            n: torch.tensor(v, dtype=torch.float32, device=device)
            for n, v in state["epoch_dual_sums"].items()
        }
        self._epoch_steps = int(state["epoch_dual_steps"])
        self._violated_for = {n: int(state["violated_for"].get(n, 0)) for n in self._violated_for}
        self._warned = set(state["warned"])


class _Interrupted(KeyboardInterrupt):
    """The KeyboardInterrupt raised after an agreed stop, once the checkpoint is written."""


def _postfix(record: StepRecord) -> dict[str, str]:
    out = {"L_f": f"{record.objective:.3g}"}
    for name, value in record.values.items():
        out[name] = f"{value:.3g}"
        if name in record.multipliers:
            out[f"λ_{name}"] = f"{record.multipliers[name]:.3g}"
    return out
