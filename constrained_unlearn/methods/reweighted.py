"""WGA and SatImp: gradient ascent with per-token weights.

With ``π_p = p_θ(y_p | prefix)`` the probability of the answer token at an aligned forget
position and ``sg`` stop-gradient:

    WGA     L_f = (1/|A_f|) Σ_p sg(π_p^β) log π_p
    SatImp  L_f = (1/|A_f|) Σ_p sg(π_p^{β₁} (1 − π_p)^{β₂}) log π_p

Minimising ``log π`` is gradient ascent on the NLL; the weights stop it from pushing on tokens
already forgotten (small ``π``), which is what makes plain gradient ascent collapse.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch

from constrained_unlearn.llm.terms import ForgetObjective, LMView
from constrained_unlearn.losses import satimp_loss, wga_loss
from constrained_unlearn.methods.base import Method, check_number

__all__ = ["WGA", "SatImp"]


def _wga(view: LMView, reference: LMView | None, *, beta: float) -> torch.Tensor:
    return wga_loss(view.require_logits(), view.targets, view.mask, beta)


def _satimp(view: LMView, reference: LMView | None, *, beta1: float, beta2: float) -> torch.Tensor:
    return satimp_loss(view.require_logits(), view.targets, view.mask, beta1, beta2)


@dataclass
class WGA(Method):
    """Weighted gradient ascent (Wang et al. 2025, "Rethinking LLM Unlearning Objectives: A
    Gradient Perspective and Go Beyond", arXiv 2502.19301; ICLR 2025).

        L(θ) = (1/|A_f|) Σ_{p∈A_f} sg(π_p^β) log π_p + λ · NLL_r(θ)

    Defaults from open-unlearning's WGA config: β = 1, λ = 1 (``gamma = alpha = 1``).

    Attributes:
        beta: the weight exponent β ≥ 0 (1.0; 0 is plain gradient difference).
        retain_weight: λ (1.0).
    """

    name: ClassVar[str] = "wga"
    paper: ClassVar[str] = "Wang et al. 2025, arXiv 2502.19301"

    retain_weight: float = 1.0
    beta: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_number("beta", self.beta, minimum=0.0)

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        return ForgetObjective("wga", partial(_wga, beta=float(self.beta)))


@dataclass
class SatImp(Method):
    """SatImp (Yang et al. 2025, "Exploring Criteria of Loss Reweighting to Enhance LLM
    Unlearning", arXiv 2505.11953; ICML 2025).

        L(θ) = (1/|A_f|) Σ_{p∈A_f} sg(π_p^{β₁} (1 − π_p)^{β₂}) log π_p + λ · NLL_r(θ)

    Defaults from open-unlearning's SatImp config: β₁ = 5, β₂ = 1 and the weights
    ``0.1·L_f + 1·NLL_r`` (``gamma: 0.1, alpha: 1``), i.e. λ = α/γ = 10 here: the library's
    Lagrangian ``L_f + λ L_r`` is that loss times 1/γ = 10, the same minimiser and, under
    AdamW, the same updates (AdamW is invariant to a constant loss factor up to its ε).

    Attributes:
        beta1: saturation exponent β₁ ≥ 0 (5.0).
        beta2: importance exponent β₂ ≥ 0 (1.0).
        retain_weight: λ (10.0).
    """

    name: ClassVar[str] = "satimp"
    paper: ClassVar[str] = "Yang et al. 2025, arXiv 2505.11953"

    retain_weight: float = 10.0
    beta1: float = 5.0
    beta2: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_number("beta1", self.beta1, minimum=0.0)
        check_number("beta2", self.beta2, minimum=0.0)

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        loss = partial(_satimp, beta1=float(self.beta1), beta2=float(self.beta2))
        return ForgetObjective("satimp", loss)
