"""The PDU step written the way a user of Hugging Face ``Trainer`` would write it: the reference
that :mod:`step_benchmark` races against.

What a ``Trainer`` user does (and what open-unlearning's trainers do): a dataset whose items are
``{"forget": example, "retain": example}``, a collator that pads each side, and a ``Trainer``
subclass whose ``compute_loss`` runs the two forwards and returns the Lagrangian; the dual
variable is a Python float updated inside ``compute_loss`` from the retain loss of the batch:

    L_f  = (1/|A_f|) Σ_{p∈A_f} (max_k z_{p,k} − mean_k z_{p,k})²     forget, answer positions
    L_r  = the model's own ``labels`` loss on the retain batch          (token cross-entropy)
    loss = L_f + λ (L_r − ε)                                           back-propagated by Trainer
    λ   ← max(0, λ + η (L_r − ε))                                      after the loss, per batch

``A_f`` are the positions whose next-token label is supervised (the logits at ``t`` paired with
the label at ``t + 1``), the same convention as the library's ``CausalLMTerms``. With one
micro-batch per step this is the library's GDA step: same λ_t in the primal loss, same dual
update, so both produce the same losses step by step from the same model and batches.

The batches are fed in the order the library's ``PairedData`` draws them (a sequential sampler
over pre-paired items), so losses can be compared step by step; the optimiser is the same
(``torch.optim.AdamW``, weight decay 0.01, constant lr, gradient clipping at 1.0).

Usage (normally through ``step_benchmark.py --variants hf``)::

    from hf_trainer_reference import run_reference
    result = run_reference(model, pairs, collate, steps=15, lr=1e-5, epsilon=1.0,
                           multiplier_init=1.0, dual_lr=1.0)
"""

from __future__ import annotations

__all__ = ["PairedItems", "PDUTrainer", "run_reference"]

import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments


class PairedItems(torch.utils.data.Dataset):
    """``[{"forget": example, "retain": example}]`` in a fixed order."""

    def __init__(self, pairs: Sequence[tuple[Any, Any]]) -> None:
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        forget, retain = self.pairs[i]
        return {"forget": forget, "retain": retain}


def margin_loss_on_answers(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(1/|A|) Σ_{p∈A} (max_k z_{p,k} − mean_k z_{p,k})²`` over next-token-aligned answers.

    ``logits [B, T, V]``, ``labels [B, T]`` with ``-100`` off the answer.
    """
    shifted = logits[:, :-1, :]
    mask = labels[:, 1:] != -100
    rows = shifted[mask].float()
    margin = rows.max(dim=-1).values - rows.mean(dim=-1)
    return (margin**2).mean()


class PDUTrainer(Trainer):
    """``Trainer`` whose loss is the PDU Lagrangian; λ lives on the trainer as a float."""

    def __init__(
        self, *args: Any, epsilon: float, multiplier_init: float, dual_lr: float, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.epsilon = float(epsilon)
        self.multiplier = float(multiplier_init)
        self.dual_lr = float(dual_lr)
        self.loss_log: list[tuple[float, float, float]] = []  # (L_f, L_r, λ used)

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler:
        return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        forget, retain = inputs["forget"], inputs["retain"]
        f_out = model(input_ids=forget["input_ids"], attention_mask=forget["attention_mask"])
        forget_loss = margin_loss_on_answers(f_out.logits, forget["labels"])
        r_out = model(**retain)  # input_ids, attention_mask, labels: the model's own CE
        retain_loss = r_out.loss
        lam = self.multiplier
        loss = forget_loss + lam * (retain_loss - self.epsilon)
        value = retain_loss.item()  # the dual step needs the number on the host
        self.loss_log.append((forget_loss.item(), value, lam))
        self.multiplier = max(0.0, lam + self.dual_lr * (value - self.epsilon))
        return (loss, f_out) if return_outputs else loss


class _StepClock(TrainerCallback):
    def __init__(self, sync: Callable[[], None]) -> None:
        self.sync = sync
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.last: float | None = None
        self.last_cpu = 0.0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.sync()
        now, cpu = time.perf_counter(), time.process_time()
        if self.last is not None:
            self.times.append(now - self.last)
            self.cpu_times.append(cpu - self.last_cpu)
        self.last, self.last_cpu = now, cpu


def run_reference(
    model: torch.nn.Module,
    pairs: Sequence[tuple[Any, Any]],
    collate: Callable[[list[Any]], dict[str, torch.Tensor]],
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-5,
    epsilon: float = 1.0,
    multiplier_init: float = 1.0,
    dual_lr: float = 1.0,
    max_grad_norm: float = 1.0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train ``steps`` PDU steps with :class:`PDUTrainer`; step times and the loss log.

    Args:
        pairs: ``(forget example, retain example)`` in the order to use; ``steps · batch_size``
            of them are consumed.
        collate: pads a list of examples into ``{"input_ids", "attention_mask", "labels"}``.

    Returns:
        ``{"times": [s, …] (step end to step end, wall), "cpu_times": [s, …] (process CPU),
        "losses": [(L_f, L_r, λ), …]}``.
    """
    if len(pairs) < steps * batch_size:
        raise ValueError(f"{steps} steps of {batch_size} need {steps * batch_size} pairs")

    def collate_pairs(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "forget": collate([item["forget"] for item in items]),
            "retain": collate([item["retain"] for item in items]),
        }

    cuda = device.startswith("cuda")
    clock = _StepClock(torch.cuda.synchronize if cuda else (lambda: None))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            max_steps=steps,
            learning_rate=lr,
            weight_decay=0.01,
            lr_scheduler_type="constant",
            max_grad_norm=max_grad_norm,
            optim="adamw_torch",
            use_cpu=not cuda,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            eval_strategy="no",
            dataloader_num_workers=0,
            remove_unused_columns=False,
            disable_tqdm=True,
            seed=0,
        )
        trainer = PDUTrainer(
            model=model,
            args=args,
            train_dataset=PairedItems(pairs[: steps * batch_size]),
            data_collator=collate_pairs,
            callbacks=[clock],
            epsilon=epsilon,
            multiplier_init=multiplier_init,
            dual_lr=dual_lr,
        )
        trainer.train()
    return {"times": clock.times, "cpu_times": clock.cpu_times, "losses": trainer.loss_log}
