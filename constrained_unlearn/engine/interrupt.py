"""Deferred interrupts: the first SIGINT/SIGTERM finishes the step, the second stops at once.

While installed (checkpointing on, main thread), the first SIGINT or SIGTERM (SLURM preemption
and torchrun's agent send SIGTERM before killing a job) only sets `InterruptGuard.requested`.
The engine carries that flag through the step's all-reduce, so every rank agrees on the step
after which to checkpoint and stop (`stop_agreed`). A second signal raises
``KeyboardInterrupt`` at once.

The guard also tracks whether the run is at an optimiser-step boundary (nothing half-applied:
`consistent`) and this rank's RNG state at the last boundary, so a ``KeyboardInterrupt``
inside a step can still checkpoint the previous boundary exactly.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from constrained_unlearn.engine.rng import capture_rng_state

__all__ = ["AgreedStop", "InterruptGuard"]

logger = logging.getLogger(__name__)


class AgreedStop(KeyboardInterrupt):
    """Raised after an agreed stop, once the checkpoint is written."""


class InterruptGuard:
    """Signal handling and step-boundary bookkeeping for one run.

    Args:
        enabled: whether signals are deferred (checkpointing is on); otherwise Ctrl-C behaves
            as usual and no boundary RNG is captured.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.requested = False
        self.stop_agreed = False
        self.consistent = True
        self.boundary_rng: dict[str, Any] | None = None

    def mark_boundary(self) -> None:
        """The state is between optimiser steps; remember this rank's RNG for an interrupt."""
        self.consistent = True
        if self.enabled:
            self.boundary_rng = capture_rng_state()

    def leave_boundary(self) -> None:
        """Parameters or multipliers are about to change: no checkpoint until the next boundary."""
        self.consistent = False

    def agree(self, any_rank_requested: bool) -> None:
        """Record the all-reduced verdict "some rank was asked to stop"."""
        if any_rank_requested:
            self.stop_agreed = True

    def should_stop(self, world_size: int) -> bool:
        """Stop after this step: all ranks agreed (or the only rank was asked)."""
        return self.stop_agreed or (world_size == 1 and self.requested)

    def clear(self) -> None:
        self.requested = self.stop_agreed = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Defer SIGINT/SIGTERM inside the block (main thread only; restored afterwards)."""
        if not self.enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
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
            self.clear()
