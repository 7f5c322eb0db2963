"""The unlearning engine: primal-dual optimisation on accelerate.

    fit(resume):
        restore the newest intact checkpoint (resume) or start fresh
        fresh and some ε uncalibrated:  measure c(θ₀) on `calibration_batches`, set ε
        for each epoch, for each group of K micro-batches (streamed, deterministic order):
            solver.step(primitives, micro)      observe / primal step / dual step (solvers/)
            record the step; fresh and ε given: c(θ₀) := step 0's observed values
            monitor; callbacks; checkpoint every `save_every` steps or on an agreed interrupt
        end of epoch: the dual step of dual_update="epoch"
        final checkpoint; feasibility of the last step's values against ε

The engine knows no model family (it only calls ``terms_fn``) and no solver: a solver's
[`step`][constrained_unlearn.solvers.Solver.step] orders the primitives of
`constrained_unlearn.engine.primitives`, which enforce the invariants (λ moves once per
optimiser step on the all-reduced mean of its micro-batches, state by constraint name).

Run state lives in `state`, checkpoint I/O in
`checkpoint`, signals in `interrupt`,
the infeasibility warnings in `monitor`. With checkpointing on,
the first SIGINT/SIGTERM finishes the step, checkpoints and raises ``KeyboardInterrupt``; a
resumed run ends bit-identical to an uninterrupted one on the same hardware.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device, set_seed
from tqdm.auto import tqdm

from constrained_unlearn.engine import checkpoint as ckpt
from constrained_unlearn.engine.checkpointing import Checkpointing
from constrained_unlearn.engine.config import EngineConfig
from constrained_unlearn.engine.data import PairedData
from constrained_unlearn.engine.errors import NonFiniteError
from constrained_unlearn.engine.feasibility import (
    FeasibilityReport,
    check_feasibility,
    warn_if_infeasible,
)
from constrained_unlearn.engine.history import Callback, History, StepRecord
from constrained_unlearn.engine.interrupt import AgreedStop, InterruptGuard
from constrained_unlearn.engine.monitor import FeasibilityMonitor
from constrained_unlearn.engine.primitives import StepPrimitives
from constrained_unlearn.engine.rng import restore_rng_state
from constrained_unlearn.engine.runtime import (
    OptimizerFactory,
    build_optimizer,
    check_framework,
    make_accelerator,
)
from constrained_unlearn.engine.schedule import make_lr_scheduler
from constrained_unlearn.engine.signature import engine_signature, merge_signatures
from constrained_unlearn.engine.starting import measure_constraints
from constrained_unlearn.engine.state import RunState
from constrained_unlearn.engine.terms import TermsFn
from constrained_unlearn.problem import ConstraintSpec, UnlearningProblem
from constrained_unlearn.solvers import Solver, make_solver

__all__ = ["OptimizerFactory", "UnlearningEngine"]


class UnlearningEngine:
    """Runs ``min L_f s.t. c_i ≤ ε_i`` with any solver.

    Args:
        model: the model to unlearn (any ``nn.Module``).
        terms_fn: ``(model, forget_batch, retain_batch) -> Terms``.
        data: the paired forget/retain data.
        constraints: constraint specifications; default one calibrated ``"retain"`` constraint.
        solver: a solver name (``"gda"``, ``"alternating-gda"``, ``"extragradient"``,
            ``"augmented-lagrangian"``, ``"nupi"``, ``"penalty"``) or a [`Solver`][constrained_unlearn.solvers.Solver].
        solver_kwargs: hyper-parameters when ``solver`` is a name.
        optimizer: a primal optimiser over ``model``'s parameters, or a factory taking the
            trainable parameters; default ``AdamW(lr=lr)``.
        lr: learning rate of the default optimiser.
        config: loop settings.
        accelerator: an existing ``Accelerator`` (default: one built from ``config``).
        callbacks: [`Callback`][constrained_unlearn.engine.Callback] objects.
        run_config: the resolved configuration of the whole run (any JSON-serialisable dict;
            other values are stored as strings), written into every checkpoint's
            ``config.json``.
        run_signature: what determines the run beyond the engine's own settings (method and
            its options, model id, max_length …), flat ``{key: JSON value}``; stored in every
            checkpoint with the engine's own part (`signature`)
            and compared on resume (``EngineConfig.resume_overrides`` lists keys that may differ).

    Attributes:
        state: the explicit run state (progress, monitor, starting values, signature).
        feasibility: ``{name: FeasibilityReport}`` of the last step's values after [`fit`][constrained_unlearn.engine.UnlearningEngine.fit].
        last_checkpoint: the newest checkpoint this engine wrote or resumed from.
        resumed_from: the checkpoint [`fit`][constrained_unlearn.engine.UnlearningEngine.fit] resumed from (``None`` for a fresh start).
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
        self.config = cfg = config or EngineConfig()
        self.solver = make_solver(solver, **(solver_kwargs or {}))
        self.accelerator = acc = accelerator or make_accelerator(cfg)
        check_framework(acc, cfg, self.solver)
        self.terms_fn, self.data, self.callbacks = terms_fn, data, list(callbacks)
        self.problem: UnlearningProblem = self.solver.build_problem(
            list(constraints), device=acc.device
        )
        self.model, self.optimizer = acc.prepare(model, build_optimizer(model, optimizer, lr))
        self.dual_optimizer = self.solver.make_dual_optimizer(self.problem)
        self.history = History()
        batches = data.batches_per_epoch(acc.num_processes)
        self.steps_per_epoch = math.ceil(batches / cfg.gradient_accumulation_steps)
        total = cfg.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.max_steps or total)
        self.lr_scheduler = make_lr_scheduler(
            self.optimizer, cfg.lr_scheduler, self.total_steps, cfg.lr_warmup_ratio
        )
        self.run_config: dict[str, Any] = dict(run_config or {})
        self.run_signature: dict[str, Any] = dict(run_signature or {})
        own = engine_signature(
            self.solver, self.problem, self.optimizer, cfg, acc.num_processes, data
        )
        self.state = RunState(signature=merge_signatures(own, self.run_signature))
        self.monitor = FeasibilityMonitor(
            self.state.monitor, cfg.infeasible_patience, cfg.multiplier_limit
        )
        self.interrupt = InterruptGuard(enabled=cfg.checkpoint_dir is not None)
        self.primitives = StepPrimitives(
            acc, self.model, terms_fn, self.problem, self.optimizer, self.lr_scheduler,
            self.dual_optimizer, cfg, self.interrupt,
        )  # fmt: skip
        self.checkpointing = Checkpointing(cfg, self._objects, self.interrupt, acc)
        self.feasibility: dict[str, FeasibilityReport] = {}

    # -- views of the state ---------------------------------------------------------------
    @property
    def unwrapped_model(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    @property
    def global_step(self) -> int:
        return self.state.progress.global_step

    @property
    def epoch(self) -> int:
        return self.state.progress.epoch

    @property
    def initial_values(self) -> dict[str, float]:
        """``{name: c_i(θ₀)}`` (measured before the first step or taken from step 0)."""
        return self.state.initial_values

    @initial_values.setter
    def initial_values(self, values: Mapping[str, float]) -> None:
        self.state.initial_values = dict(values)

    @property
    def resume_overridden(self) -> dict[str, dict[str, Any]]:
        """Signature keys a resume accepted through ``EngineConfig.resume_overrides``."""
        return self.state.resume_overridden

    def _objects(self) -> ckpt.RunObjects:
        return ckpt.RunObjects(
            accelerator=self.accelerator,
            model=self.model,
            optimizer=self.optimizer,
            lr_scheduler=self.lr_scheduler,
            problem=self.problem,
            dual_optimizer=self.dual_optimizer,
            state=self.state,
            history=self.history,
            total_steps=self.total_steps,
            config={
                "run_config": self.run_config,
                "engine_config": self.config.to_dict(),
                "solver": self.solver.describe(),
                "constraints": [asdict(s) for s in self.problem.specs.values()],
            },
        )

    def _pairs(self, epoch: int, start: int = 0) -> Iterator[tuple[Any, Any]]:
        """This rank's micro-batch pairs of ``epoch`` from ``start``, collated lazily, on device."""
        acc = self.accelerator
        for forget, retain in self.data.iter_epoch(
            epoch, acc.process_index, acc.num_processes, start=start
        ):
            yield send_to_device(forget, acc.device), send_to_device(retain, acc.device)

    # -- starting values ------------------------------------------------------------------
    def calibrate(self, max_batches: int | None = None) -> dict[str, float]:
        """Measure c(θ₀) on the first ``max_batches`` pairs of epoch 0 (``None``: all) and set
        uncalibrated bounds; warns when a given bound is already violated (see ``starting``)."""
        names = self.problem.constraint_names
        values = measure_constraints(
            self.model, self.terms_fn, self._pairs(0), names, self.accelerator, max_batches
        )
        self.initial_values = values
        self.problem.calibrate(values)
        return values

    # -- training -------------------------------------------------------------------------
    def fit(self, resume: bool | str | os.PathLike[str] | None = None) -> History:
        """Train for ``config.epochs`` epochs (or ``config.max_steps`` steps).

        Args:
            resume: ``True`` continues from the newest complete, intact checkpoint in
                ``config.checkpoint_dir`` (fresh start if there is none; incomplete and damaged
                ones are reported and skipped); a path continues from that checkpoint;
                ``False`` starts fresh; ``None`` (default) uses ``config.resume``.

        Returns:
            The history of the whole run, including the steps before a resume.

        Raises:
            KeyboardInterrupt: after Ctrl-C, once the checkpoint is written (with
                ``checkpoint_dir`` set).
            NonFiniteError: a loss, violation, gradient norm or parameter became NaN/inf; the
                step is not applied and no checkpoint is written, so the last checkpoint is
                the last good state (its path is in the error message).
            CheckpointError: the checkpoint does not fit this run (every differing setting is
                listed) or is damaged.
        """
        cfg = self.config
        resume = cfg.resume if resume is None else resume
        set_seed(cfg.seed)
        if resume is not False and resume is not None:
            self.checkpointing.resume(resume)
        else:
            self.checkpointing.warn_existing()
        missing = any(b is None for b in self.problem.bounds.values())
        if self.resumed_from is None and missing:
            self.calibrate(cfg.calibration_batches)
        self.model.train()
        for callback in self.callbacks:
            callback.on_train_begin(self)
        if self.checkpointing.pending_rng is not None:  # as late as possible: exact RNG stream
            restore_rng_state(self.checkpointing.pending_rng)
            self.checkpointing.pending_rng = None
        bar = tqdm(
            total=self.total_steps,
            initial=min(self.global_step, self.total_steps),
            desc=f"unlearning ({self.solver.name})",
            disable=not (cfg.progress and self.accelerator.is_main_process),
            dynamic_ncols=True,
        )
        try:
            with self.interrupt.installed():
                self.interrupt.mark_boundary()
                self._train(bar)
        except KeyboardInterrupt as err:
            if not isinstance(err, AgreedStop):
                self.checkpointing.after_interrupt(self.global_step)
            raise
        except NonFiniteError as err:
            if self.last_checkpoint is not None:
                err.checkpoint = str(self.last_checkpoint)
                err.args = (f"{err.args[0]} The last good checkpoint is {self.last_checkpoint}.",)
            raise
        finally:
            bar.close()
        self.checkpointing.at_end(self.state.progress.resume_point())
        self._check_final_feasibility()
        for callback in self.callbacks:
            callback.on_train_end(self, self.history)
        return self.history

    def _train(self, bar: tqdm) -> None:
        cfg, progress = self.config, self.state.progress
        k = cfg.gradient_accumulation_steps
        for epoch in range(progress.first_epoch(), cfg.epochs):
            if self.global_step >= self.total_steps and progress.position == 0:
                break  # max_steps reached at the end of the previous epoch
            progress.start_epoch(epoch)
            stream = self._pairs(epoch, start=progress.position)
            while self.global_step < self.total_steps:
                micro = list(itertools.islice(stream, k))  # K micro-batches at a time
                if not micro:
                    break
                record = self._step(micro)
                self.history.records.append(record)
                progress.finish_step(len(micro))
                self.interrupt.mark_boundary()
                bar.update(1)
                bar.set_postfix(record.postfix(), refresh=False)
                for callback in self.callbacks:
                    callback.on_step_end(self, record)
                self.checkpointing.after_step(self.global_step)
            self.interrupt.leave_boundary()
            means = progress.take_epoch_means()
            if means is not None:
                self.primitives.epoch_dual_step(means)
            progress.epoch_closed = True
            self.interrupt.mark_boundary()
            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch)
            if self.global_step >= self.total_steps:
                break

    def _step(self, micro: list[tuple[Any, Any]]) -> StepRecord:
        """One optimiser step by the solver, then its record."""
        step, epoch = self.global_step, self.epoch
        live = self.solver.dual_is_live(step, epoch)
        per_step = self.solver.dual_update == "step"
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.primitives.begin(step, dual_moves=live and per_step)
        result = self.solver.step(self.primitives, micro)
        values = {n: float(v) for n, v in result.observation.values.items()}
        if live and not per_step:
            self.state.progress.add_epoch_values(values, self.accelerator.device)
        bounds = self.problem.require_bounds()
        record = StepRecord(
            step=step,
            epoch=epoch,
            objective=result.observation.objective,
            values=values,
            violations={n: v - bounds[n] for n, v in values.items()},
            multipliers=self.problem.multiplier_values(),
            lr=lr,
            grad_norm=result.grad_norm,
            dual_live=live,
            metrics=result.observation.metrics,
        )
        if not self.initial_values:  # every ε was given: c(θ₀) is step 0's observation
            self.initial_values = values
            self.problem.calibrate(values)  # only warns on an infeasible start
        self.monitor.update(record)
        return record

    def _check_final_feasibility(self) -> None:
        """Feasibility of the last step's values (``EngineConfig.feasibility_tolerance``)."""
        if not self.history.records:
            return
        last = self.history.records[-1]
        bounds = self.problem.require_bounds()
        self.feasibility = check_feasibility(last.values, bounds, self.config.feasibility_tolerance)
        self.history.feasibility = dict(self.feasibility)
        if self.accelerator.is_main_process:
            warn_if_infeasible(self.feasibility, stacklevel=3)

    # -- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self, directory: str | os.PathLike[str] | None = None) -> Path:
        """Write ``<directory>/checkpoint-<global_step>`` now (call it on every rank).

        ``directory`` defaults to ``config.checkpoint_dir``; ``config.keep_last`` applies. Call
        it between optimiser steps (e.g. from [`Callback.on_step_end`][constrained_unlearn.engine.Callback.on_step_end]) or after [`fit`][constrained_unlearn.engine.UnlearningEngine.fit].
        """
        return self.checkpointing.save(directory=directory)

    def load_checkpoint(self, path: str | os.PathLike[str], *, verify: bool = True) -> None:
        """Restore weights, optimiser, dual state, run state and history from a checkpoint.

        The saved RNG state is applied when [`fit`][constrained_unlearn.engine.UnlearningEngine.fit] continues. Refuses (``CheckpointError``)
        a damaged checkpoint, another constraint set, or a run whose signature differs (every
        differing key listed; ``EngineConfig.resume_overrides`` allows named keys).
        """
        self.checkpointing.load(path, verify=verify)

    @property
    def last_checkpoint(self) -> Path | None:
        return self.checkpointing.last_checkpoint

    @property
    def resumed_from(self) -> Path | None:
        return self.checkpointing.resumed_from
