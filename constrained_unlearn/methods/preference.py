"""Preference objectives over replaced answers (IdkDPO, AltPO), as data over the LM terms.

For a forget question ``x`` with answer ``y_l`` (rejected) and a preferred answer ``y_w`` (a
refusal for IdkDPO, an alternate answer for AltPO), with ``s(y|x)`` the summed answer
log-probability:

    Δ_b = [s_θ(y_w|x) − s_ref(y_w|x)] − [s_θ(y_l|x) − s_ref(y_l|x)]
    L_f = −(2/β) · mean_b log σ(β Δ_b)                      ([`dpo_loss`][constrained_unlearn.losses.dpo_loss])

The objective's ``prepare`` stacks the forget batch (rows ``0..B-1``) with the same prompts
carrying the preferred answers (rows ``B..2B-1``), so θ and θ_ref each score both in one
forward.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from constrained_unlearn.llm.collate import pad_collate
from constrained_unlearn.llm.terms import Batch, ForgetObjective, LMView, concat_batches
from constrained_unlearn.losses import dpo_loss, token_nll
from constrained_unlearn.losses.masking import IGNORE_INDEX

__all__ = ["preference_objective", "prompt_key", "split_rows", "replace_answers"]

Chooser = Callable[[list[int], list[int]], Sequence[int]]
"""``choose(prompt_ids, answer_ids) -> preferred answer ids`` (EOS included)."""


def prompt_key(prompt_ids: Sequence[int]) -> int:
    """A stable hash of prompt ids (crc32): the same on every rank, run and resume."""
    return zlib.crc32(",".join(map(str, prompt_ids)).encode())


def split_rows(batch: Batch) -> list[tuple[list[int], list[int]]]:
    """``(prompt ids, answer ids)`` of every row: the prompt is everything before the first
    supervised label, the answer the supervised ids (EOS included)."""
    labels = batch["labels"].detach().cpu()
    input_ids = batch["input_ids"].detach().cpu()
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    out = []
    for b, n in enumerate(lengths):
        row = labels[b, : int(n)]
        supervised = (row != IGNORE_INDEX).nonzero()
        if supervised.numel() == 0:
            raise ValueError(f"forget row {b} has no supervised answer token")
        start = int(supervised[0])
        out.append(
            (input_ids[b, :start].tolist(), row[start:][row[start:] != IGNORE_INDEX].tolist())
        )
    return out


def replace_answers(batch: Batch, choose: Chooser, pad_token_id: int) -> dict[str, torch.Tensor]:
    """The batch with every answer replaced by ``choose(prompt, answer)``.

    Row ``b`` keeps its prompt ids; labels are ``-100`` on the prompt and the new ids on the
    answer; right-padded with ``pad_token_id``, on the batch's device.
    """
    examples = []
    for prompt, answer in split_rows(batch):
        new = list(choose(prompt, answer))
        if not new:
            raise ValueError("a preferred answer is empty")
        examples.append({"input_ids": prompt + new, "labels": [IGNORE_INDEX] * len(prompt) + new})
    out = pad_collate(examples, pad_token_id, side="right")
    device = batch["input_ids"].device
    return {k: v.to(device) for k, v in out.items()}


@dataclass(frozen=True)
class _WithPreferred:
    choose: Chooser
    pad_token_id: int

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        preferred = replace_answers(batch, self.choose, self.pad_token_id)
        return concat_batches(batch, preferred, self.pad_token_id)


def _preference_loss(
    view: LMView, reference: LMView | None, *, beta: float, chosen_metric: str
) -> tuple[torch.Tensor, dict]:
    assert reference is not None
    n = view.mask.shape[0] // 2
    s = view.sequence_log_prob()  # [2B]: original answers, then preferred ones
    s_ref = reference.sequence_log_prob()
    loss = dpo_loss(s[n:], s[:n], s_ref[n:], s_ref[:n], beta)
    with torch.no_grad():
        margin = (s[n:] - s_ref[n:]) - (s[:n] - s_ref[:n])
        chosen = view.rows(n, 2 * n)
        chosen_nll = token_nll(chosen.require_logits().detach(), chosen.targets, chosen.mask)
    return loss, {"dpo_margin": margin.mean(), chosen_metric: chosen_nll}


def preference_objective(
    name: str, choose: Chooser, pad_token_id: int, beta: float, chosen_metric: str
) -> ForgetObjective:
    """DPO toward ``choose``'s answers, away from the forget answers (needs θ_ref).

    Metrics: ``dpo_margin`` (mean Δ) and ``chosen_metric`` (token NLL of the preferred answers).
    """
    loss = partial(_preference_loss, beta=beta, chosen_metric=chosen_metric)
    return ForgetObjective(
        name,
        loss,
        needs_reference=True,
        prepare=_WithPreferred(choose, int(pad_token_id)),
        needs="a second batch of preferred answers and per-sequence log-probabilities",
    )
