"""Settings of the training loop (solver settings live on the solver)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Literal

__all__ = ["EngineConfig"]


_NUMERIC_FIELDS = (
    "epochs",
    "max_steps",
    "gradient_accumulation_steps",
    "max_grad_norm",
    "lr_warmup_ratio",
    "seed",
    "infeasible_patience",
    "multiplier_limit",
    "save_every",
    "keep_last",
    "calibration_batches",
    "feasibility_tolerance",
)


@dataclass
class EngineConfig:
    """How the engine trains.

    Attributes:
        epochs: passes over the forget set.
        max_steps: stop after this many optimiser steps (``None``: run all epochs).
        gradient_accumulation_steps: micro-batches per optimiser step (K). The primal gradient
            is the mean of the K micro-batch gradients and λ sees the mean of their violations.
        max_grad_norm: clip the primal gradient to this norm (``None``: no clipping).
        lr_scheduler: ``"constant"``, ``"linear"`` or ``"cosine"`` decay after the warm-up.
        lr_warmup_ratio: fraction of the optimiser steps with a linear LR warm-up.
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` (through accelerate).
        cpu: force the CPU even if an accelerator is present.
        seed: seeds python, numpy and torch at the start of `fit`.
        progress: show a progress bar (main process only).
        infeasible_patience: warn when a constraint is violated for this many consecutive live
            optimiser steps (``None``: never).
        multiplier_limit: warn when a multiplier exceeds this value.
        checkpoint_dir: where checkpoints are written (``<dir>/checkpoint-<step>``, see
            `constrained_unlearn.engine.checkpoint`); ``None``: no checkpoints, and Ctrl-C
            behaves as usual.
        save_every: write a checkpoint every this many optimiser steps (needs
            ``checkpoint_dir``; ``None``: only on interrupt and at the end).
        keep_last: keep only the newest K complete checkpoints (``None``: keep all). A
            checkpoint is deleted only after a newer one is complete.
        save_final: write a checkpoint when training ends (needs ``checkpoint_dir``).
        calibration_batches: when some ε is calibrated (``ConstraintSpec(bound=None)``), the
            number of epoch-0 micro-batch pairs measured at θ₀ (eval mode, no gradients) for
            ``ε = (1 + slack) · c(θ₀)``. ``None`` (default): all of epoch 0, because ε bounds the
            whole run and a few batches would move it by their noise; a number bounds the
            start-up cost. When every ε is given there is no extra pass: the starting values
            are step 0's observation (see `constrained_unlearn.engine.starting`).
        resume: ``True`` continues from the newest complete checkpoint in ``checkpoint_dir``
            (a fresh start when there is none); a path continues from that checkpoint;
            ``False`` starts fresh. [`UnlearningEngine.fit`][constrained_unlearn.engine.UnlearningEngine.fit] can override it.
        resume_overrides: keys of the run signature (`constrained_unlearn.engine.signature`,
            e.g. ``"optimizer.group0.lr"``, ``"constraint.retain.bound"``, ``"method.name"``) that
            may deliberately differ from the checkpoint's on resume; each is logged and recorded
            in ``UnlearningEngine.resume_overridden``. Every other difference is refused.
        feasibility_tolerance: relative tolerance τ of the end-of-run check
            ``value ≤ bound · (1 + τ)`` (`constrained_unlearn.engine.feasibility`).
    """

    epochs: int = 1
    max_steps: int | None = None
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"
    lr_warmup_ratio: float = 0.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    cpu: bool = False
    seed: int = 0
    progress: bool = True
    infeasible_patience: int | None = 50
    multiplier_limit: float | None = 1e6
    checkpoint_dir: str | os.PathLike[str] | None = None
    save_every: int | None = None
    keep_last: int | None = None
    save_final: bool = True
    resume: bool | str | os.PathLike[str] = False
    calibration_batches: int | None = None
    resume_overrides: tuple[str, ...] = ()
    feasibility_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        for name in _NUMERIC_FIELDS:  # bool is an int subclass: `epochs=True` must not mean 1
            if isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a number, got the boolean {getattr(self, name)}")
        tolerance = self.feasibility_tolerance
        if not (
            isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0
        ):
            raise ValueError(
                f"feasibility_tolerance must be a finite number ≥ 0, got {tolerance!r}"
            )
        if self.calibration_batches is not None and (
            not isinstance(self.calibration_batches, int) or self.calibration_batches < 1
        ):
            raise ValueError(
                f"calibration_batches must be None or an integer ≥ 1, got {self.calibration_batches!r}"
            )
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer ≥ 1, got {self.epochs!r}")
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ValueError(f"max_steps must be None or an integer ≥ 1, got {self.max_steps!r}")
        if (
            not isinstance(self.gradient_accumulation_steps, int)
            or self.gradient_accumulation_steps < 1
        ):
            raise ValueError(
                "gradient_accumulation_steps must be an integer ≥ 1, "
                f"got {self.gradient_accumulation_steps!r}"
            )
        if self.max_grad_norm is not None and not (
            math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0
        ):
            raise ValueError(f"max_grad_norm must be None or > 0, got {self.max_grad_norm!r}")
        if self.lr_scheduler not in ("constant", "linear", "cosine"):
            raise ValueError(
                f"lr_scheduler must be 'constant', 'linear' or 'cosine', got {self.lr_scheduler!r}"
            )
        if not 0.0 <= self.lr_warmup_ratio < 1.0:
            raise ValueError(f"lr_warmup_ratio must be in [0, 1), got {self.lr_warmup_ratio}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(
                f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}"
            )
        if self.infeasible_patience is not None and self.infeasible_patience < 1:
            raise ValueError("infeasible_patience must be None or ≥ 1")
        if self.save_every is not None:
            if not isinstance(self.save_every, int) or self.save_every < 1:
                raise ValueError(
                    f"save_every must be None or an integer ≥ 1, got {self.save_every!r}"
                )
            if self.checkpoint_dir is None:
                raise ValueError(
                    f"save_every={self.save_every} needs a place to write: set checkpoint_dir"
                )
        if self.keep_last is not None and (
            not isinstance(self.keep_last, int) or self.keep_last < 1
        ):
            raise ValueError(f"keep_last must be None or an integer ≥ 1, got {self.keep_last!r}")
        if self.resume is True and self.checkpoint_dir is None:
            raise ValueError(
                "resume=True looks for the newest checkpoint in checkpoint_dir, which is not set; "
                "set checkpoint_dir or pass the checkpoint's path as resume"
            )

    def to_dict(self) -> dict[str, object]:
        """All settings as a flat dict (paths as strings, so it is JSON-serialisable)."""
        out = asdict(self)
        for key in ("checkpoint_dir", "resume"):
            if isinstance(out[key], os.PathLike):
                out[key] = os.fspath(out[key])
        return out
