"""Checks the engine applies to what it is handed and to what it would save."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from constrained_unlearn.engine.errors import NonFiniteError, TermsError
from constrained_unlearn.engine.terms import Terms
from constrained_unlearn.problem import UnlearningProblem

__all__ = ["check_finite_state", "check_terms"]


def check_terms(terms: Any, names: Sequence[str]) -> Terms:
    """``terms`` if it is a [`Terms`][constrained_unlearn.engine.Terms] with scalar objective and values for ``names``.

    Raises:
        TermsError: naming what is wrong (type, shape, constraint names) and the fix.
    """
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
    if set(terms.constraints) != set(names):
        raise TermsError(
            f"terms_fn returned constraint values {sorted(terms.constraints)}, "
            f"but the problem's constraints are {list(names)}"
        )
    for name, value in terms.constraints.items():
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            shape = getattr(value, "shape", type(value).__name__)
            raise TermsError(
                f"constraint {name!r} must be a scalar tensor, got shape {shape}; "
                "reduce it inside the terms function"
            )
    return terms


def check_finite_state(model: torch.nn.Module, problem: UnlearningProblem, step: int) -> None:
    """Raise [`NonFiniteError`][constrained_unlearn.engine.NonFiniteError] if a trainable parameter or a multiplier is NaN/inf.

    One host sync for all tensors (a stacked ``isfinite(p).all()`` per tensor).
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params += [(f"multiplier {n!r}", p) for n, p in problem.named_multiplier_parameters()]
    if not params:
        return
    flags = torch.stack([torch.isfinite(p.detach()).all() for _, p in params]).tolist()
    for (name, p), ok in zip(params, flags):
        if not ok:
            bad = p.detach()[~torch.isfinite(p.detach())].flatten()[0].item()
            raise NonFiniteError(step, f"parameter {name}", bad)
