"""UNDIAL and CE-U: distil the model toward a target that takes mass off the answer token.

With ``z_p`` the logits at an aligned forget answer position ``p``, ``y_p`` its answer token and
``CE(q, p) = −Σ_k q_k log p_k``:

    UNDIAL  L_f = (1/|A_f|) Σ_p CE(softmax(z_p^ref − β e_{y_p}), softmax(z_p))   (θ_ref frozen)
    CE-U    L_f = (1/|A_f'|) Σ_p CE(softmax(sg(z_p) − ∞·e_{y_p}), softmax(z_p))

Both targets are distributions, so the losses are bounded below (no collapse as with gradient
ascent). CE-U's target is the current model's own (stop-gradient) distribution without the
answer token; UNDIAL's is the starting model's with the answer token's logit lowered by β.
CE-U skips the first ``n`` answer positions of every row (``A_f'``; the paper's footnote and
open-unlearning's default n = 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch

from constrained_unlearn.llm.terms import ForgetObjective, LMView
from constrained_unlearn.losses import ceu_loss, undial_loss
from constrained_unlearn.methods.base import Method, check_number

__all__ = ["CEU", "UNDIAL", "drop_first_answer_positions"]


def drop_first_answer_positions(mask: torch.Tensor, n: int) -> torch.Tensor:
    """``mask [B, T]`` without the first ``n`` true positions of every row."""
    if n == 0:
        return mask
    mask = mask.bool()
    return mask & (mask.long().cumsum(dim=-1) > n)


def _undial(view: LMView, reference: LMView | None, *, beta: float) -> torch.Tensor:
    assert reference is not None and reference.logits is not None
    return undial_loss(view.require_logits(), reference.logits, view.targets, view.mask, beta)


def _ceu(view: LMView, reference: LMView | None, *, skip: int) -> torch.Tensor:
    mask = drop_first_answer_positions(view.mask, skip)
    if not bool(mask.any()):
        raise ValueError(
            f"CE-U: no forget answer is longer than ignore_first_n_answer_tokens={skip}; "
            "lower it (0 keeps every position)"
        )
    return ceu_loss(view.require_logits(), view.targets, mask)


@dataclass
class UNDIAL(Method):
    """UNDIAL (Dong et al. 2024, "UNDIAL: Self-Distillation with Adjusted Logits for Robust
    Unlearning in Large Language Models", arXiv 2402.10052; NAACL 2025).

        L(θ) = (1/|A_f|) Σ_{p∈A_f} −Σ_k q_{p,k} log softmax(z_p)_k + λ · NLL_r(θ),
        q_p  = softmax(z_p^ref − β e_{y_p})                       (θ_ref: the frozen start)

    Defaults from open-unlearning's UNDIAL config: β = 10, λ = 0 (``alpha: 0``: no retain
    term; the retain NLL is still logged, and a primal-dual solver turns it into the
    constraint ``NLL_r ≤ ε`` with λ₀ = 0). Unlike open-unlearning, which averages over every
    position of the sequence (prompt and padding included), the mean runs over the aligned
    answer positions like every loss here.

    Attributes:
        beta: the logit reduction β ≥ 0 of the answer token (10.0).
        retain_weight: λ (0.0).
    """

    name: ClassVar[str] = "undial"
    paper: ClassVar[str] = "Dong et al. 2024, arXiv 2402.10052"
    uses_reference: ClassVar[bool] = True

    retain_weight: float = 0.0
    beta: float = 10.0

    def validate(self) -> None:
        super().validate()
        check_number("beta", self.beta, minimum=0.0)

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        return ForgetObjective(
            "undial",
            partial(_undial, beta=float(self.beta)),
            needs_reference=True,
            needs="the full logits of the model and of the reference",
        )


@dataclass
class CEU(Method):
    """CE-U, cross-entropy unlearning (Yang et al. 2025, "CE-U: Cross Entropy Unlearning",
    arXiv 2503.01224).

        L(θ) = (1/|A_f'|) Σ_{p∈A_f'} −Σ_{k≠y_p} q_{p,k} log softmax(z_p)_k + λ · NLL_r(θ),
        q_p  = softmax(sg(z_p) − ∞·e_{y_p})

    ``A_f'`` drops the first ``ignore_first_n_answer_tokens`` answer positions of every row.
    The gradient in ``z_p`` is ``softmax(z_p) − q_p``: it removes the answer token's mass and
    spreads it over the others in proportion to their own. No reference model. Defaults from
    open-unlearning's CE-U config: n = 1, λ = 0 (no retain term; with a primal-dual solver the
    retain NLL becomes the constraint, λ₀ = 0).

    Attributes:
        ignore_first_n_answer_tokens: n ≥ 0 (1).
        retain_weight: λ (0.0).
    """

    name: ClassVar[str] = "ce-u"
    paper: ClassVar[str] = "Yang et al. 2025, arXiv 2503.01224"

    retain_weight: float = 0.0
    ignore_first_n_answer_tokens: int = 1

    def validate(self) -> None:
        super().validate()
        n = self.ignore_first_n_answer_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"ignore_first_n_answer_tokens must be an integer ≥ 0, got {n!r}")

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        return ForgetObjective("ce-u", partial(_ceu, skip=self.ignore_first_n_answer_tokens))
