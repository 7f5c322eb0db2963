"""Plain fine-tuning of the mini-TOFU models (not unlearning: no engine, no constraint).

Objective: the mean token NLL of the answers (answer tokens and EOS; prompt and padding carry
no loss, labels built by [`encode_qa`][constrained_unlearn.llm.encode_qa])::

    L(θ) = −(1/|M|) Σ_{(b,t) ∈ M} log p_θ(y_{b,t+1} | y_{b,≤t}),    M = supervised positions

Only the hidden states of supervised positions go through the output head (the logits of the
prompt positions would be multiplied by zero anyway), which saves about a fifth of the compute
of a step for this tiny model; the value equals ``model(..., labels=...).loss``.

Optimiser: AdamW, linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to
``min_lr_ratio · learning_rate``; gradient-norm clipping. Batches are shuffled per epoch with
``random.Random(seed)``, so a run is deterministic for a fixed thread count.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from constrained_unlearn.llm.collate import pad_collate
from constrained_unlearn.llm.tokenization import PromptTemplate, QADataset
from constrained_unlearn.losses.masking import IGNORE_INDEX

__all__ = ["FinetuneLog", "TrainSettings", "answer_nll", "finetune", "lr_factor", "make_optimizer"]


@dataclass(frozen=True)
class TrainSettings:
    """Fine-tuning hyper-parameters (all of them enter the mini-TOFU cache key).

    Memorising facts, rather than learning templates, takes many passes: the defaults were
    chosen so that the default mini-TOFU target model reproduces its training answers
    (see the package docstring for the measured numbers).
    """

    epochs: int = 30
    learning_rate: float = 3e-3
    batch_size: int = 32
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"TrainSettings.epochs and batch_size must be ≥ 1, got {self.epochs}, "
                f"{self.batch_size}"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"TrainSettings.learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.warmup_fraction < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(
                "TrainSettings.warmup_fraction must be in [0, 1) and min_lr_ratio in [0, 1], got "
                f"{self.warmup_fraction}, {self.min_lr_ratio}"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FinetuneLog:
    """What a fine-tuning run did: mean loss per epoch, steps, wall seconds."""

    epoch_losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def lr_factor(step: int, total_steps: int, settings: TrainSettings) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based).

    ``(step + 1) / W`` for ``step < W = round(warmup_fraction · total_steps)``, then
    ``r + (1 − r) · ½ (1 + cos(π · (step − W) / (total_steps − W)))`` with ``r = min_lr_ratio``.
    """
    warmup = round(settings.warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    r = settings.min_lr_ratio
    return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(
    model: torch.nn.Module, settings: TrainSettings, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no weight decay on biases and norms) with the warm-up + cosine schedule
    `lr_factor`, held at its last value past ``total_steps``."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
        betas=settings.betas,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(min(s, total_steps - 1), total_steps, settings)
    )
    return optimizer, scheduler


def answer_nll(model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token NLL over supervised positions (module docstring), a scalar.

    ``batch`` holds ``input_ids``, ``attention_mask`` and ``labels`` ``[B, T]`` from
    [`pad_collate`][constrained_unlearn.llm.pad_collate].
    """
    hidden = model.model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE_INDEX
    logits = model.lm_head(hidden[:, :-1][mask])  # [N, V], N supervised positions
    return F.cross_entropy(logits.float(), targets[mask])


def finetune(
    model: Any,
    rows: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    settings: TrainSettings,
    *,
    seed: int = 0,
    template: PromptTemplate | None = None,
    progress: bool = True,
    desc: str = "fine-tune",
) -> FinetuneLog:
    """Fine-tune ``model`` in place on QA ``rows`` (``question``/``answer``).

    Args:
        model: a ``LlamaForCausalLM`` (anything with ``.model`` returning
            ``last_hidden_state`` and an ``.lm_head``).
        rows: the training pairs.
        tokenizer: encodes the pairs (plain ``Question: …\\nAnswer: `` prompt by default).
        settings: hyper-parameters.
        seed: shuffling seed.
        template: prompt format handed to [`QADataset`][constrained_unlearn.llm.QADataset].
        progress: show a tqdm bar over optimiser steps.
        desc: the bar's label.

    Returns:
        A `FinetuneLog`; the model is left in eval mode.
    """
    dataset = QADataset(rows, tokenizer, template=template)
    items = [dataset[i] for i in range(len(dataset))]
    n = len(items)
    steps_per_epoch = math.ceil(n / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    optimizer, scheduler = make_optimizer(model, settings, total)
    rng = random.Random(seed)
    log = FinetuneLog()
    start = time.perf_counter()
    model.train()
    with tqdm(total=total, desc=desc, disable=not progress, unit="step") as bar:
        for _ in range(settings.epochs):
            order = list(range(n))
            rng.shuffle(order)
            running = 0.0
            for i in range(0, n, settings.batch_size):
                batch = pad_collate(
                    [items[j] for j in order[i : i + settings.batch_size]],
                    tokenizer.pad_token_id,
                )
                loss = answer_nll(model, batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                running += float(loss.detach())
                log.steps += 1
                bar.update(1)
            log.epoch_losses.append(running / steps_per_epoch)
            bar.set_postfix(loss=f"{log.epoch_losses[-1]:.3f}")
    model.eval()
    log.seconds = time.perf_counter() - start
    return log
