"""The contract between an application and the engine.

An application (LLM, classifier, toy problem) hands the engine one callable,

    terms_fn(model, forget_batch, retain_batch) -> Terms

which runs the model on one micro-batch pair and returns the scalar objective (the forget loss)
and the value of every constrained quantity by name. The engine turns ``value ≤ bound`` into the
cooper constraint ``value − bound ≤ 0``; it never looks inside the batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Terms", "TermsFn"]


@dataclass
class Terms:
    """Differentiable quantities of one micro-batch pair.

    Attributes:
        objective: scalar tensor, the forget objective L_f on the forget micro-batch.
        constraints: ``{name: scalar tensor}``, the constrained quantities (e.g. ``"retain"`` →
            retain NLL). Names must match the problem's constraints.
        metrics: extra numbers to log (never differentiated): floats, or scalar tensors, which
            the engine sums on the device and reads once per optimiser step (no host sync per
            micro-batch).
    """

    objective: torch.Tensor
    constraints: Mapping[str, torch.Tensor]
    metrics: Mapping[str, float | torch.Tensor] = field(default_factory=dict)


TermsFn = Callable[[torch.nn.Module, Any, Any], Terms]
"""``(model, forget_batch, retain_batch) -> Terms``."""
