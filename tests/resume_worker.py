"""Interrupted and resumed runs for test_resume.py (plain `python` or `torchrun`).

    python resume_worker.py OUT CKPT_DIR full-then-kill KILL_AFTER SAVE_EVERY
        1. an uninterrupted run, results to OUT.full.<rank>.pt;
        2. the same run with checkpoints every SAVE_EVERY steps that SIGKILLs its own process
           after optimiser step KILL_AFTER (no cleanup, no atexit: a crash).
    python resume_worker.py OUT CKPT_DIR resume
        a fresh process continues from the newest complete checkpoint; results to
        OUT.resume.<rank>.pt, plus the nuPI state of every multiplier right after loading
        (`resume` does the same inside the calling process).

The problem: a linear classifier with three named constraints (retain CE, weight norm, bias
norm), nuPI dual, Adam primal, linear LR decay, K = 2 micro-batches per step, and terms that
draw noise from the python, numpy and torch RNGs (rank 1 draws more than rank 0), so the run
is only reproduced if every rank's RNG state is restored.
"""

from __future__ import annotations

import os
import random
import signal
import sys

import numpy as np
import torch
from accelerate import Accelerator
from toy_problems import classifier_data, classifier_terms, linear_model

from constrained_unlearn.engine import Callback, EngineConfig, PairedData, Terms, UnlearningEngine
from constrained_unlearn.problem import ConstraintSpec

NAMES = ("retain", "weight_norm", "bias_norm")


def noisy_terms(model: torch.nn.Module, forget, retain) -> Terms:
    base = classifier_terms(model, forget, retain)
    inner = getattr(model, "module", model)  # DDP wraps the Linear
    rank = int(os.environ.get("RANK", "0"))
    for _ in range(rank):  # per-rank RNG streams differ
        torch.rand(3)
    noise = 1e-3 * (torch.randn(()) + random.random() + float(np.random.rand()))
    return Terms(
        objective=base.objective + noise,
        constraints={
            "retain": base.constraints["retain"],
            "weight_norm": inner.weight.pow(2).sum(),
            "bias_norm": inner.bias.pow(2).sum(),
        },
    )


def make_engine(accelerator: Accelerator, checkpoint_dir: str | None, save_every: int | None):
    forget, retain = classifier_data()
    return UnlearningEngine(
        linear_model(),
        noisy_terms,
        PairedData(forget, retain, batch_size=2, seed=3),
        constraints=[
            ConstraintSpec("retain", bound=0.9),
            ConstraintSpec("weight_norm", bound=0.6),
            ConstraintSpec("bias_norm", bound=0.02),
        ],
        solver="nupi",
        solver_kwargs={"multiplier_init": 0.5, "dual_lr": 0.3, "kp": 1.0, "ki": 1.0},
        optimizer=lambda p: torch.optim.Adam(p, lr=0.05),
        config=EngineConfig(
            epochs=3,
            gradient_accumulation_steps=2,
            lr_scheduler="linear",
            progress=False,
            infeasible_patience=None,
            checkpoint_dir=checkpoint_dir,
            save_every=save_every,
            keep_last=2,
        ),
        accelerator=accelerator,
        run_config={"worker": "resume_worker", "save_every": save_every},
    )


def results(engine: UnlearningEngine) -> dict:
    history = engine.history
    return {
        "num_processes": engine.accelerator.num_processes,
        "steps": [r.step for r in history],
        "lambda": {n: history.series(f"{n}/multiplier") for n in NAMES},
        "objective": history.series("objective"),
        "params": {k: v.detach().clone() for k, v in engine.unwrapped_model.state_dict().items()},
        "resumed_from": str(engine.resumed_from) if engine.resumed_from else None,
    }


class KillAfter(Callback):
    """SIGKILL this process after optimiser step ``step``: a crash without any cleanup."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, engine, record) -> None:
        if engine.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class DualStateAtStart(Callback):
    """Record the nuPI state of each multiplier, by name, right after the checkpoint is loaded."""

    def __init__(self) -> None:
        self.state: dict[str, dict] = {}

    def on_train_begin(self, engine) -> None:
        for name, param in engine.problem.named_multiplier_parameters():
            self.state[name] = {
                key: value.detach().clone() if torch.is_tensor(value) else value
                for key, value in engine.dual_optimizer.state[param].items()
            }
        self.state["_lambda"] = engine.problem.multiplier_values()


def resume(accelerator: Accelerator, checkpoint_dir: str) -> dict:
    """Continue from the newest complete checkpoint; results plus the dual state at load."""
    engine = make_engine(accelerator, checkpoint_dir, None)
    probe = DualStateAtStart()
    engine.callbacks.append(probe)
    engine.fit(resume=True)
    return {**results(engine), "dual_at_load": probe.state}


def main() -> None:
    torch.set_num_threads(1)
    out, checkpoint_dir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    accelerator = Accelerator(cpu=True)
    rank = accelerator.process_index
    if mode == "full-then-kill":
        kill_after, save_every = int(sys.argv[4]), int(sys.argv[5])
        full = make_engine(accelerator, None, None)
        full.fit()
        torch.save(results(full), f"{out}.full.{rank}.pt")
        crashing = make_engine(accelerator, checkpoint_dir, save_every)
        crashing.callbacks.append(KillAfter(kill_after))
        crashing.fit()
        raise SystemExit("the run should have been killed")
    if mode == "resume":
        torch.save(resume(accelerator, checkpoint_dir), f"{out}.resume.{rank}.pt")
        return
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
