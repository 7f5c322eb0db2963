"""The accelerate side of an engine: building the ``Accelerator`` and refusing what cannot run."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from constrained_unlearn.engine.config import EngineConfig
from constrained_unlearn.engine.errors import LaunchError
from constrained_unlearn.solvers import Solver

__all__ = [
    "OptimizerFactory",
    "adamw",
    "build_optimizer",
    "check_framework",
    "check_launch",
    "make_accelerator",
]

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
"""Builds the primal optimiser from the trainable parameters."""


def adamw(
    params: list[torch.nn.Parameter], lr: float, weight_decay: float = 0.01
) -> torch.optim.AdamW:
    """AdamW, with PyTorch's fused kernel where every parameter allows it.

    The fused kernel does the update of all parameters in one pass (measured here on the 58M
    step benchmark: see docs/benchmarks.md); it needs dense floating-point tensors on CPU or
    CUDA and is left to PyTorch's default (foreach) elsewhere: sharded or other tensor types,
    other devices. Same update rule either way (to float rounding).
    """
    fusable = (
        all(
            type(p.data) is torch.Tensor
            and p.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64)
            and p.device.type in ("cpu", "cuda")
            and p.layout == torch.strided
            for p in params
        )
        and len({p.device for p in params}) == 1
    )
    return torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, fused=True if fusable else None
    )


def build_optimizer(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | OptimizerFactory | None,
    lr: float,
) -> torch.optim.Optimizer:
    """``optimizer`` itself, the factory applied to the trainable parameters, or
    [`adamw`][constrained_unlearn.engine.runtime.adamw]``(lr)``."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameter (all requires_grad=False)")
    if optimizer is None:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        return adamw(trainable, lr=lr)
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    return optimizer(trainable)


def make_accelerator(config: EngineConfig) -> Accelerator:
    """An ``Accelerator`` for ``config``, with an actionable error when the process disagrees.

    accelerate fixes the mixed precision and the device once per process (its state is a
    process-wide singleton), so a second engine with another ``mixed_precision`` or ``cpu``
    cannot get its own.
    """
    try:
        accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=config.cpu)
    except ValueError as error:
        if "already been initialized" not in str(error):
            raise
        from accelerate.state import AcceleratorState

        current = AcceleratorState().mixed_precision
        raise ValueError(
            f"EngineConfig(mixed_precision={config.mixed_precision!r}, cpu={config.cpu}) "
            f"conflicts with the accelerate state this process already has "
            f"(mixed_precision={current!r}): accelerate fixes the precision and the device once "
            "per process. Use the same mixed_precision and cpu for every engine in this process, "
            "pass accelerator= to share one, or run each setting in its own process"
        ) from error
    check_launch(accelerator)
    return accelerator


def check_launch(accelerator: Accelerator) -> None:
    """Refuse a process that a launcher started as one of ``WORLD_SIZE`` > 1 but that accelerate
    runs alone (on a machine without a GPU, accelerate joins the processes only when told to use
    the CPU): each would run the whole job by itself and write the same output folder."""
    try:
        launched = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:  # not a launcher's value: nothing to compare
        return
    if launched > 1 and accelerator.num_processes == 1:
        raise LaunchError(
            f"this process was launched as one of {launched} (WORLD_SIZE={launched}) but "
            "accelerate runs it alone, so every process would run the whole job by itself into "
            "the same output folder; on a machine without a GPU export ACCELERATE_USE_CPU=true "
            "(accelerate joins CPU processes only then), or launch one process"
        )


def check_framework(accelerator: Accelerator, config: EngineConfig, solver: Solver) -> None:
    """Refuse the combinations the engine's step cannot run correctly, before any compute.

    Under DeepSpeed the optimiser step belongs to DeepSpeed's engine: it steps on its own
    accumulation boundary (the engine accumulates micro-batches itself, so with K > 1 it would
    step every micro-batch) and keeps the fp32 master weights inside, where a solver that
    restores θ (``Solver.extrapolates``, e.g. extragradient) cannot reach.
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
    if solver.extrapolates:
        raise ValueError(
            f"solver {solver.name!r} extrapolates θ and restores it, which DeepSpeed's "
            "internal fp32 master weights do not allow; use 'gda', 'alternating-gda', 'nupi' "
            "or 'augmented-lagrangian' under DeepSpeed, or run extragradient with FSDP/DDP"
        )
