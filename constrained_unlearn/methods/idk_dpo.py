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

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from constrained_unlearn.engine.terms import Terms, TermsFn
from constrained_unlearn.llm.collate import pad_collate
from constrained_unlearn.llm.terms import answer_logits, check_batch, concat_batches
from constrained_unlearn.losses import sequence_log_prob
from constrained_unlearn.losses.masking import IGNORE_INDEX
from constrained_unlearn.methods.base import (
    Batch,
    Method,
    RetainTerm,
    _check_number,
    forget_metrics,
    make_terms_result,
    on_device_of,
)
from constrained_unlearn.methods.refusals import REFUSALS

__all__ = ["IdkDPO", "IdkDPOTerms", "dpo_loss", "refusal_batch"]


def dpo_loss(
    chosen_log_prob: torch.Tensor,
    rejected_log_prob: torch.Tensor,
    ref_chosen_log_prob: torch.Tensor,
    ref_rejected_log_prob: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """DPO loss scaled by ``2/β`` (see the module docstring).

        L = −(2/β) · mean_b log σ(β [(c_b − c_b^ref) − (r_b − r_b^ref)])

    Args:
        chosen_log_prob: ``[B]`` log-probabilities of the refusals under θ.
        rejected_log_prob: ``[B]`` log-probabilities of the forget answers under θ.
        ref_chosen_log_prob: ``[B]`` the refusals under θ_ref (detached).
        ref_rejected_log_prob: ``[B]`` the forget answers under θ_ref (detached).
        beta: inverse temperature β > 0.

    Returns:
        A float32 scalar ≥ 0.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    shapes = {
        tuple(t.shape)
        for t in (chosen_log_prob, rejected_log_prob, ref_chosen_log_prob, ref_rejected_log_prob)
    }
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"dpo_loss needs four [B] tensors of one shape, got {sorted(shapes)}")
    margin = (chosen_log_prob - ref_chosen_log_prob.detach()) - (
        rejected_log_prob - ref_rejected_log_prob.detach()
    )
    return -(2.0 / beta) * F.logsigmoid(beta * margin.float()).mean()


def _prompt_lengths(batch: Batch) -> list[int]:
    """Prompt length of every row: the index of its first supervised label."""
    labels = batch["labels"]
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    out = []
    for b, n in enumerate(lengths):
        supervised = (labels[b, : int(n)] != IGNORE_INDEX).nonzero()
        if supervised.numel() == 0:
            raise ValueError(f"forget row {b} has no supervised answer token")
        out.append(int(supervised[0]))
    return out


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
    examples = []
    input_ids = batch["input_ids"].detach().cpu()
    for b, prompt_length in enumerate(_prompt_lengths(batch)):
        prompt = input_ids[b, :prompt_length].tolist()
        key = zlib.crc32(",".join(map(str, prompt)).encode())
        answer = list(refusal_ids[key % len(refusal_ids)])
        examples.append(
            {"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer}
        )
    out = pad_collate(examples, pad_token_id, side="right")
    device = batch["input_ids"].device
    return {k: v.to(device) for k, v in out.items()}


class IdkDPOTerms:
    """``objective = dpo_loss(refusal ≻ original answer)``, ``"retain"`` = retain NLL.

    The original and refusal batches run as one forward of their right-padded concatenation
    (model and reference alike). Metrics add ``refusal_nll`` (token NLL of the refusals) and
    ``dpo_margin`` (mean Δ).
    """

    def __init__(
        self,
        reference: torch.nn.Module,
        refusal_ids: Sequence[Sequence[int]],
        pad_token_id: int,
        beta: float,
        retain: RetainTerm,
    ) -> None:
        self.reference = reference
        self.refusal_ids = [list(r) for r in refusal_ids]
        self.pad_token_id = int(pad_token_id)
        self.beta = beta
        self.retain = retain

    def __call__(self, model: torch.nn.Module, forget_batch: Batch, retain_batch: Batch) -> Terms:
        check_batch(forget_batch, "forget_batch")
        check_batch(retain_batch, "retain_batch")
        n = forget_batch["input_ids"].shape[0]
        idk = refusal_batch(forget_batch, self.refusal_ids, self.pad_token_id)
        both = concat_batches(forget_batch, idk, self.pad_token_id)
        logits, targets, mask = answer_logits(model, both)
        log_prob = sequence_log_prob(logits, targets, mask)  # [2B]: original, then refusal
        reference = on_device_of(self.reference, forget_batch)
        with torch.no_grad():
            ref_logits, _, _ = answer_logits(reference, both)
            ref_log_prob = sequence_log_prob(ref_logits, targets, mask)
        objective = dpo_loss(
            log_prob[n:], log_prob[:n], ref_log_prob[n:], ref_log_prob[:n], self.beta
        )
        retain, retain_metrics = self.retain(model, retain_batch)
        with torch.no_grad():
            margin = (log_prob[n:] - ref_log_prob[n:]) - (log_prob[:n] - ref_log_prob[:n])
        extra = {
            "dpo_margin": float(margin.mean()),
            **{
                "refusal_nll": forget_metrics(logits[n:], targets[n:], mask[n:])["forget_nll"],
            },
        }
        return make_terms_result(
            objective,
            retain,
            forget_metrics(logits[:n], targets[:n], mask[:n]),
            retain_metrics,
            extra,
        )


@dataclass
class IdkDPO(Method):
    """DPO toward refusals (TOFU's "IDK" preference baseline, Maini et al. 2024,
    arXiv 2401.06121; DPO: Rafailov et al. 2023, arXiv 2305.18290) with a retain NLL.

        L(θ) = −(2/β) · mean_b log σ(β Δ_b) + λ · NLL_r(θ)
        Δ_b  = [s_θ(y_w|x_b) − s_ref(y_w|x_b)] − [s_θ(y_b|x_b) − s_ref(y_b|x_b)]

    ``y_w`` is one of :data:`~constrained_unlearn.methods.refusals.REFUSALS` (32 strings
    shipped with the library, or your own), chosen per question by a hash of its prompt ids;
    ``y_b`` is the original forget answer. Needs the tokenizer (to encode the refusals) and
    θ_ref.

    Attributes:
        beta: β > 0 (0.1).
        retain_weight: λ (1.0).
        refusals: the refusal answers.
    """

    name: ClassVar[str] = "idk-dpo"
    paper: ClassVar[str] = "Maini et al. 2024, arXiv 2401.06121; Rafailov et al. 2023"

    retain_weight: float = 1.0
    beta: float = 0.1
    refusals: tuple[str, ...] = REFUSALS

    def validate(self) -> None:
        super().validate()
        _check_number("beta", self.beta, minimum=0.0, strict=True)
        if isinstance(self.refusals, str):
            raise ValueError("refusals must be a sequence of strings, not one string")
        self.refusals = tuple(self.refusals)
        if not self.refusals or not all(isinstance(r, str) and r.strip() for r in self.refusals):
            raise ValueError("refusals must be a non-empty sequence of non-empty strings")

    @property
    def needs_reference(self) -> bool:
        return True

    def encode_refusals(self, tokenizer: Any) -> list[list[int]]:
        """Token ids of every refusal, tokenised like an answer (no special tokens) + EOS."""
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError("IdkDPO needs a tokenizer with an eos_token (answers end with EOS)")
        out = []
        for text in self.refusals:
            ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
            if not ids or ids[-1] != eos:
                ids.append(eos)
            out.append(ids)
        return out

    def make_terms(
        self,
        *,
        tokenizer: Any | None = None,
        reference_model: torch.nn.Module | None = None,
        train_retain: bool = True,
    ) -> TermsFn:
        reference = self._require_reference(reference_model)
        if tokenizer is None:
            raise ValueError("IdkDPO needs the tokenizer to encode its refusal answers")
        pad = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        return IdkDPOTerms(
            reference,
            self.encode_refusals(tokenizer),
            int(pad),
            self.beta,
            RetainTerm("nll", None, train_retain),
        )
