"""NPO and SimNPO: preference-style forget losses on whole answers.

With ``s_θ(y|x) = Σ_{p∈A} log p_θ(y_p | prefix)`` the answer log-probability of one forget
example (``A`` its aligned answer positions) and ``|y|`` its number of answer tokens:

    NPO     L_f = −(2/β) · mean_b log σ(−β (s_θ(y_b|x_b) − s_ref(y_b|x_b)))
    SimNPO  L_f = −(2/β) · mean_b log σ(−β s_θ(y_b|x_b) / |y_b| − γ)

Both are bounded below by 0 (unlike gradient ascent) and their gradient vanishes as the answer
becomes unlikely, which slows the collapse of the model. Neither can be chunked (they need
per-sequence log-probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch

from constrained_unlearn.llm.terms import ForgetObjective, LMView
from constrained_unlearn.losses import npo_loss, simnpo_loss
from constrained_unlearn.methods.base import Method, check_number

__all__ = ["NPO", "SimNPO"]

_PER_SEQUENCE = "per-sequence answer log-probabilities (full logits)"


def _npo(view: LMView, reference: LMView | None, *, beta: float) -> tuple[torch.Tensor, dict]:
    assert reference is not None
    log_prob = view.sequence_log_prob()  # [B]
    ref_log_prob = reference.sequence_log_prob()
    ratio = (log_prob.detach() - ref_log_prob).mean()
    return npo_loss(log_prob, ref_log_prob, beta=beta), {"forget_log_ratio": ratio}


def _simnpo(
    view: LMView, reference: LMView | None, *, beta: float, gamma: float
) -> tuple[torch.Tensor, dict]:
    avg = view.sequence_log_prob(normalize=True)  # [B]
    loss = simnpo_loss(avg, beta=beta, gamma=gamma)
    return loss, {"forget_avg_log_prob": avg.detach().mean()}


@dataclass
class NPO(Method):
    """Negative Preference Optimisation (Zhang et al. 2024, "Negative Preference Optimization:
    From Catastrophic Collapse to Effective Unlearning", arXiv 2404.05868) with a retain NLL.

        L(θ) = −(2/β) · mean_b log σ(−β (s_θ(y_b|x_b) − s_ref(y_b|x_b))) + λ · NLL_r(θ)

    ``s_ref`` comes from the frozen starting model θ_ref (built by [`setup`][constrained_unlearn.methods.Method.setup]). At θ = θ_ref
    the forget loss is exactly ``(2/β) log 2``. Metric ``forget_log_ratio``: mean ``s_θ − s_ref``.

    Attributes:
        beta: inverse temperature β > 0 (0.1 in the paper and open-unlearning).
        retain_weight: λ (1.0).
    """

    name: ClassVar[str] = "npo"
    paper: ClassVar[str] = "Zhang et al. 2024, arXiv 2404.05868"
    uses_reference: ClassVar[bool] = True

    retain_weight: float = 1.0
    beta: float = 0.1

    def validate(self) -> None:
        super().validate()
        check_number("beta", self.beta, minimum=0.0, strict=True)

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        return ForgetObjective(
            "npo", partial(_npo, beta=self.beta), needs_reference=True, needs=_PER_SEQUENCE
        )


@dataclass
class SimNPO(Method):
    """SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference
    Optimization for LLM Unlearning", arXiv 2410.07163): reference-free, length-normalised NPO
    with a retain NLL.

        L(θ) = −(2/β) · mean_b log σ(−β s_θ(y_b|x_b)/|y_b| − γ) + λ · NLL_r(θ)

    No reference model is built. Metric ``forget_avg_log_prob``: mean ``s_θ/|y|``.

    Attributes:
        beta: β > 0 (2.5).
        gamma: reward margin γ ≥ 0 (0.0).
        retain_weight: λ (1.0).
    """

    name: ClassVar[str] = "simnpo"
    paper: ClassVar[str] = "Fan et al. 2024, arXiv 2410.07163"

    retain_weight: float = 1.0
    beta: float = 2.5
    gamma: float = 0.0

    def validate(self) -> None:
        super().validate()
        check_number("beta", self.beta, minimum=0.0, strict=True)
        check_number("gamma", self.gamma, minimum=0.0)

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        loss = partial(_simnpo, beta=self.beta, gamma=self.gamma)
        return ForgetObjective("simnpo", loss, needs=_PER_SEQUENCE)
