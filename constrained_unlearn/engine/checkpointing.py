"""When a run checkpoints and where it resumes from (the policy; the I/O is in ``checkpoint``).

* every ``save_every`` optimiser steps, at the end (``save_final``), and after an agreed
  interrupt (`InterruptGuard`), then stop;
* after any other ``KeyboardInterrupt`` in a single process: the last step boundary, with the
  RNG state captured there (nothing if a step was half applied);
* ``resume=True``: the newest complete and intact checkpoint (damaged ones are skipped with a
  warning naming both); a path: that checkpoint.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from constrained_unlearn.engine import checkpoint as ckpt
from constrained_unlearn.engine.config import EngineConfig
from constrained_unlearn.engine.interrupt import AgreedStop, InterruptGuard

__all__ = ["Checkpointing"]

logger = logging.getLogger(__name__)


class Checkpointing:
    """Checkpoint policy of one run over `checkpoint.save_checkpoint` / ``load_checkpoint``.

    Args:
        config: the engine's settings (``checkpoint_dir``, ``save_every``, ``keep_last`` …).
        objects: returns the run's `RunObjects`.
        interrupt: the run's interrupt guard.
        accelerator: the run's ``Accelerator`` (which rank reports; how many there are).

    Attributes:
        last_checkpoint: the newest checkpoint written or resumed from.
        resumed_from: the checkpoint resumed from (``None`` for a fresh start).
        pending_rng: the RNG state of a loaded checkpoint, until the run applies it.
    """

    def __init__(
        self,
        config: EngineConfig,
        objects: Callable[[], ckpt.RunObjects],
        interrupt: InterruptGuard,
        accelerator: Accelerator,
    ) -> None:
        self.config = config
        self.objects = objects
        self.interrupt = interrupt
        self.is_main_process = accelerator.is_main_process
        self.world_size = accelerator.num_processes
        self.last_checkpoint: Path | None = None
        self.resumed_from: Path | None = None
        self.pending_rng: dict[str, Any] | None = None
        self._saved_at: tuple[int, int, int] | None = None

    def save(
        self,
        rng_state: Mapping[str, Any] | None = None,
        directory: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Write ``<directory or checkpoint_dir>/checkpoint-<step>`` (every rank)."""
        target = directory if directory is not None else self.config.checkpoint_dir
        if target is None:
            raise ValueError("no checkpoint directory: pass one or set EngineConfig.checkpoint_dir")
        objects = self.objects()
        path = ckpt.save_checkpoint(
            objects, target, rng_state=rng_state, keep_last=self.config.keep_last
        )
        self.last_checkpoint = path
        self._saved_at = objects.state.progress.resume_point()
        return path

    def load(self, path: str | os.PathLike[str], *, verify: bool = True) -> None:
        """Restore the run from ``path`` (every rank); the RNG state waits in ``pending_rng``."""
        objects = self.objects()
        loaded = ckpt.load_checkpoint(
            objects, path, overrides=self.config.resume_overrides, verify=verify
        )
        self.pending_rng = loaded.rng_state
        self.last_checkpoint = self.resumed_from = Path(path)
        self._saved_at = objects.state.progress.resume_point()

    def resume(self, resume: bool | str | os.PathLike[str]) -> None:
        """Continue from ``resume`` (``True``: the newest intact checkpoint, if any)."""
        if resume is False:
            return
        if resume is not True:
            self.load(resume)
            return
        directory = self.config.checkpoint_dir
        if directory is None:
            raise ValueError(
                "resume=True looks in checkpoint_dir, which is not set; set "
                "EngineConfig.checkpoint_dir or pass the checkpoint path as resume"
            )
        path = ckpt.latest_checkpoint(directory, report=self.is_main_process)
        if path is None:
            logger.info("resume: no intact checkpoint in %s, starting fresh", directory)
            return
        self.load(path, verify=False)  # latest_checkpoint verified it

    def warn_existing(self) -> None:
        """A fresh run into a directory that holds another run's checkpoints: warn."""
        directory = self.config.checkpoint_dir
        if directory is None or not self.is_main_process:
            return
        complete, _ = ckpt.list_checkpoints(directory)
        if complete:
            warnings.warn(
                f"{directory} already holds checkpoints of another run (newest {complete[-1]}); "
                "this fresh run will write next to them and may replace or prune them. Pass "
                "resume=True to continue that run, or use another checkpoint_dir.",
                ckpt.CheckpointWarning,
                stacklevel=4,
            )

    def after_step(self, step: int) -> None:
        """Periodic checkpoint; checkpoint and raise `AgreedStop` after an interrupt."""
        saved = False
        if self.config.save_every is not None and step % self.config.save_every == 0:
            self.save()
            saved = True
        if self.interrupt.should_stop(self.world_size):
            if not saved:
                self.save()
            self.interrupt.clear()
            raise AgreedStop(f"interrupted; checkpoint written to {self.last_checkpoint}")

    def at_end(self, resume_point: tuple[int, int, int]) -> None:
        """The final checkpoint (``save_final``), unless this state is already saved."""
        cfg = self.config
        if cfg.checkpoint_dir is not None and cfg.save_final and self._saved_at != resume_point:
            self.save()

    def after_interrupt(self, step: int) -> None:
        """After a KeyboardInterrupt: write the last step boundary if that is still possible."""
        if self.config.checkpoint_dir is None:
            return
        if self.world_size > 1:
            logger.warning(
                "KeyboardInterrupt outside the agreed stop of a multi-process run: no checkpoint "
                "written (ranks may be at different steps); the last one is %s",
                self.last_checkpoint,
            )
            return
        if not self.interrupt.consistent:
            logger.warning(
                "interrupted while an optimiser step was being applied: no checkpoint written; "
                "the last one is %s",
                self.last_checkpoint,
            )
            return
        path = self.save(rng_state=self.interrupt.boundary_rng)
        logger.warning("interrupted; checkpoint of step %d written to %s", step, path)
