"""Starting values ``c_i(θ₀)``: what ε is calibrated from and an infeasible start is judged by.

* Every ε given (nothing to calibrate): no extra pass. The engine takes the starting values from
  its first optimiser step's observation — the all-reduced mean over that step's K micro-batches
  at θ₀, in training mode — at no cost.
* Some ε calibrated (``ConstraintSpec(bound=None)``, ``ε = (1 + α) c(θ₀)``):
  `measure_constraints` averages ``c_i`` over the first ``calibration_batches``
  micro-batch pairs of epoch 0 in eval mode, without gradients, all-reduced over processes.
  The default (``None``) is every pair of epoch 0: ε is a hard bound for the whole run and an
  estimate from a few batches would move it by their noise. A number bounds the start-up cost
  (e.g. 8 pairs on a large forget set); the choice is the user's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from accelerate import Accelerator

from constrained_unlearn.engine.guards import check_terms
from constrained_unlearn.engine.terms import TermsFn

__all__ = ["measure_constraints"]


@torch.no_grad()
def measure_constraints(
    model: torch.nn.Module,
    terms_fn: TermsFn,
    pairs: Iterable[tuple[Any, Any]],
    names: Sequence[str],
    accelerator: Accelerator,
    max_batches: int | None = None,
) -> dict[str, float]:
    """``{name: mean_b c_name(b)}`` over the first ``max_batches`` of ``pairs`` (eval mode).

    The mean is over micro-batch pairs on each rank, then all-reduced (mean) across ranks.
    """
    sums = torch.zeros(len(names), device=accelerator.device)
    count = 0
    was_training = model.training
    model.eval()
    try:
        for forget, retain in itertools.islice(pairs, max_batches):
            terms = check_terms(terms_fn(model, forget, retain), names)
            sums += torch.stack([terms.constraints[n].detach().float().reshape(()) for n in names])
            count += 1
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("no micro-batch to measure the starting constraint values on")
    means = accelerator.reduce(sums / count, reduction="mean").tolist()
    return dict(zip(names, means))
