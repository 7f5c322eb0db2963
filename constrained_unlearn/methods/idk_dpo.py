"""IdkDPO: direct preference optimisation with a refusal as the preferred answer.

For a forget question ``x`` with answer ``y_l`` (rejected) and a refusal ``y_w`` (preferred,
e.g. "I don't know."), with ``s(y|x)`` the summed answer log-probability:

    Δ_b = [s_θ(y_w|x) − s_ref(y_w|x)] − [s_θ(y_l|x) − s_ref(y_l|x)]
    L_f = −(2/β) · mean_b log σ(β Δ_b)

This is the DPO loss of Rafailov et al. 2023 (arXiv 2305.18290) scaled by ``2/β`` as in
open-unlearning's implementation (same minimiser; at θ = θ_ref it equals ``(2/β) log 2``, like
NPO). TOFU (Maini et al. 2024, arXiv 2401.06121) introduced this "IDK" preference baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from constrained_unlearn.llm.terms import Batch, ForgetObjective
from constrained_unlearn.losses import dpo_loss
from constrained_unlearn.methods.base import Method, check_number
from constrained_unlearn.methods.preference import (
    preference_objective,
    prompt_key,
    replace_answers,
)
from constrained_unlearn.methods.refusals import REFUSALS

__all__ = ["IdkDPO", "dpo_loss", "encode_answer", "refusal_batch"]


def encode_answer(tokenizer: Any, text: str) -> list[int]:
    """Token ids of an answer as [`encode_qa`][constrained_unlearn.llm.encode_qa] encodes it: no
    special tokens, then EOS."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("the tokenizer has no eos_token (answers end with EOS)")
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids or ids[-1] != eos:
        ids.append(eos)
    return ids


@dataclass(frozen=True)
class _Refusal:
    """``choose(prompt, answer)``: refusal ``k = crc32(prompt) mod K``."""

    refusal_ids: tuple[tuple[int, ...], ...]

    def __call__(self, prompt: list[int], answer: list[int]) -> Sequence[int]:
        return self.refusal_ids[prompt_key(prompt) % len(self.refusal_ids)]


def refusal_batch(
    batch: Batch,
    refusal_ids: Sequence[Sequence[int]],
    pad_token_id: int,
) -> dict[str, torch.Tensor]:
    """The forget batch with every answer replaced by a refusal.

    Row ``b`` keeps its prompt ids ``x_b`` (everything before its first supervised label) and
    gets the refusal ``refusal_ids[k]`` with ``k = crc32(x_b) mod len(refusal_ids)``: the same
    question always gets the same refusal, on every rank and after a resume. Labels are ``-100``
    on the prompt and the refusal ids on the answer; right-padded, on the batch's device.

    Args:
        batch: a right-padded forget batch (``input_ids``, ``attention_mask``, ``labels``).
        refusal_ids: token ids of each refusal, EOS included.
        pad_token_id: pad id of the new batch.
    """
    if not refusal_ids:
        raise ValueError("refusal_ids is empty")
    choose = _Refusal(tuple(tuple(r) for r in refusal_ids))
    return replace_answers(batch, choose, pad_token_id)


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, else its EOS id."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad)


@dataclass
class IdkDPO(Method):
    """DPO toward refusals (TOFU's "IDK" preference baseline, Maini et al. 2024,
    arXiv 2401.06121; DPO: Rafailov et al. 2023, arXiv 2305.18290) with a retain NLL.

        L(θ) = −(2/β) · mean_b log σ(β Δ_b) + λ · NLL_r(θ)
        Δ_b  = [s_θ(y_w|x_b) − s_ref(y_w|x_b)] − [s_θ(y_b|x_b) − s_ref(y_b|x_b)]

    ``y_w`` is one of `REFUSALS` (32 strings
    shipped with the library, or your own), chosen per question by a hash of its prompt ids;
    ``y_b`` is the original forget answer. Needs the tokenizer (to encode the refusals) and
    θ_ref. Metrics: ``dpo_margin`` (mean Δ), ``refusal_nll``.

    Attributes:
        beta: β > 0 (0.1).
        retain_weight: λ (1.0).
        refusals: the refusal answers.
    """

    name: ClassVar[str] = "idk-dpo"
    paper: ClassVar[str] = "Maini et al. 2024, arXiv 2401.06121; Rafailov et al. 2023"
    uses_reference: ClassVar[bool] = True

    retain_weight: float = 1.0
    beta: float = 0.1
    refusals: tuple[str, ...] = REFUSALS

    def validate(self) -> None:
        super().validate()
        check_number("beta", self.beta, minimum=0.0, strict=True)
        if isinstance(self.refusals, str):
            raise ValueError("refusals must be a sequence of strings, not one string")
        self.refusals = tuple(self.refusals)
        if not self.refusals or not all(isinstance(r, str) and r.strip() for r in self.refusals):
            raise ValueError("refusals must be a non-empty sequence of non-empty strings")

    def encode_refusals(self, tokenizer: Any) -> list[list[int]]:
        """Token ids of every refusal, tokenised like an answer (no special tokens) + EOS."""
        if getattr(tokenizer, "eos_token_id", None) is None:
            raise ValueError("IdkDPO needs a tokenizer with an eos_token (answers end with EOS)")
        return [encode_answer(tokenizer, text) for text in self.refusals]

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        if tokenizer is None:
            raise ValueError("IdkDPO needs the tokenizer to encode its refusal answers")
        choose = _Refusal(tuple(tuple(r) for r in self.encode_refusals(tokenizer)))
        return preference_objective("idk-dpo", choose, pad_id(tokenizer), self.beta, "refusal_nll")
