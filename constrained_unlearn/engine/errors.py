"""Errors and warnings raised by the engine."""

from __future__ import annotations

__all__ = ["ConstraintInfeasibleWarning", "LaunchError", "NonFiniteError", "TermsError"]


class NonFiniteError(FloatingPointError):
    """A loss, constraint value, gradient norm or parameter became NaN or infinite.

    The step was not applied and no checkpoint was written; ``checkpoint`` is the path of the
    last (good) checkpoint of the run, if any.
    """

    def __init__(self, step: int, term: str, value: float) -> None:
        self.step = step
        self.term = term
        self.value = value
        self.checkpoint: str | None = None
        super().__init__(
            f"non-finite {term} ({value}) at optimiser step {step}; the step was not applied. "
            "Lower the learning rate, enable gradient clipping (max_grad_norm) or use float32."
        )


class TermsError(ValueError):
    """The terms function returned something the engine cannot use."""


class LaunchError(RuntimeError):
    """The process was launched as one of several (``WORLD_SIZE`` > 1) but accelerate runs it
    alone: every process would run the whole job by itself, into the same output folder."""


class ConstraintInfeasibleWarning(UserWarning):
    """A constraint stayed violated after warm-up, or a multiplier grew past its limit."""
