"""Run by `torchrun --nproc_per_node N` from test_distributed.py: one engine run, results to JSON."""

import json
import sys

import torch
from accelerate import Accelerator
from toy_problems import classifier_data, classifier_terms, linear_model

from constrained_unlearn.engine import EngineConfig, PairedData, UnlearningEngine
from constrained_unlearn.problem import ConstraintSpec


def main(out_path: str, batch: int, k: int) -> None:
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    forget, retain = classifier_data()
    engine = UnlearningEngine(
        linear_model(),
        classifier_terms,
        PairedData(forget, retain, batch_size=batch, seed=3),
        constraints=[ConstraintSpec("retain", bound=0.9)],
        solver_kwargs={"multiplier_init": 1.0, "dual_lr": 0.5},
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05),
        config=EngineConfig(
            epochs=3, gradient_accumulation_steps=k, max_grad_norm=None, progress=False
        ),
        accelerator=accelerator,
    )
    history = engine.fit()
    result = {
        "num_processes": accelerator.num_processes,
        "rank": accelerator.process_index,
        "lambda": history.series("retain/multiplier"),
        "params": [p.detach().flatten().tolist() for p in engine.unwrapped_model.parameters()],
    }
    with open(f"{out_path}.{accelerator.process_index}.json", "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
