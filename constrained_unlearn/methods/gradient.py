"""Gradient ascent and gradient difference: push the forget NLL up.

With ``A_f`` / ``A_r`` the aligned answer positions of the forget / retain batch (the positions
that predict answer tokens, DESIGN.md invariant 5):

    NLL_f(θ) = −(1/|A_f|) Σ_{p∈A_f} log p_θ(y_p | prefix)

GradAscent minimises ``−NLL_f`` alone; GradDiff adds the retain loss with weight λ. The
objective `NEGATIVE_NLL` can be chunked with the LM head (``−`` the chunked NLL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from constrained_unlearn.llm.terms import (
    KL_RETAIN,
    NLL_RETAIN,
    ForgetObjective,
    LMView,
    RetainTerm,
)
from constrained_unlearn.methods.base import Method

__all__ = ["NEGATIVE_NLL", "GradAscent", "GradDiff"]


def _negative_nll(view: LMView, reference: LMView | None) -> torch.Tensor:
    return -view.nll()


NEGATIVE_NLL = ForgetObjective("-nll", _negative_nll, chunk_kind="nll", chunk_sign=-1.0)
"""``L_f = −NLL_f``."""


@dataclass
class GradAscent(Method):
    """Gradient ascent on the forget set (Jang et al. 2023, "Knowledge Unlearning for
    Mitigating Privacy Risks in Language Models", arXiv 2210.01504; the GA baseline of TOFU,
    Maini et al. 2024, arXiv 2401.06121).

        L_f(θ) = −NLL_f(θ)                     (no retain term: retain_weight = 0)

    It has no retain term of its own. By default it runs with the ``penalty`` solver at
    λ₀ = 0: the engine still observes ``"retain"`` = retain NLL, but only under
    ``torch.no_grad`` for the logs (no second backward). Switched to a primal-dual solver
    (``setup(model, solver="gda")``) it becomes *constrained* gradient ascent,

        min −NLL_f(θ)   s.t.   NLL_r(θ) ≤ ε,

    with λ starting at 0 and growing only once the retain loss crosses ε.
    """

    name: ClassVar[str] = "grad-ascent"
    paper: ClassVar[str] = "Jang et al. 2023, arXiv 2210.01504"

    retain_weight: float = 0.0

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        return NEGATIVE_NLL


@dataclass
class GradDiff(Method):
    """Gradient difference (Liu et al. 2022, "Continual Learning and Private Unlearning",
    arXiv 2203.12817; the GradDiff baseline of TOFU, Maini et al. 2024, arXiv 2401.06121).

        L(θ) = −NLL_f(θ) + λ · L_r(θ)

        retain_loss="nll":  L_r = NLL_r(θ)
        retain_loss="kl":   L_r = (1/|A_r|) Σ_{p∈A_r} KL(p_θ(·|p) ‖ p_ref(·|p))   (needs θ_ref)

    Runs with the ``penalty`` solver at λ = ``retain_weight`` by default; any primal-dual solver
    turns the weight into λ₀ of the constraint ``L_r ≤ ε`` (with ``retain_loss="kl"`` the KL
    is 0 at θ₀, so that needs an explicit ``epsilon``).

    Attributes:
        retain_loss: ``"nll"`` or ``"kl"`` (KL to the frozen starting model).
    """

    name: ClassVar[str] = "grad-diff"
    paper: ClassVar[str] = "Liu et al. 2022, arXiv 2203.12817"

    retain_weight: float = 1.0
    retain_loss: Literal["nll", "kl"] = "nll"

    def validate(self) -> None:
        super().validate()
        if self.retain_loss not in ("nll", "kl"):
            raise ValueError(f"retain_loss must be 'nll' or 'kl', got {self.retain_loss!r}")

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        return NEGATIVE_NLL

    def retain_term(self) -> RetainTerm:
        return KL_RETAIN if self.retain_loss == "kl" else NLL_RETAIN
