"""Errors and warnings raised by the engine."""

from __future__ import annotations


class NonFiniteError(FloatingPointError):
    """A loss or constraint value became NaN or infinite; the parameters were not updated."""

    def __init__(self, step: int, term: str, value: float) -> None:
        self.step = step
        self.term = term
        self.value = value
        super().__init__(
            f"non-finite {term} ({value}) at optimiser step {step}; the step was not applied. "
            "Lower the learning rate, enable gradient clipping (max_grad_norm) or use float32."
        )


class TermsError(ValueError):
    """The terms function returned something the engine cannot use."""


class ConstraintInfeasibleWarning(UserWarning):
    """A constraint stayed violated after warm-up, or a multiplier grew past its limit."""
