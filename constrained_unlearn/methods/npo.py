"""NPO and SimNPO: preference-style forget losses on whole answers.

With ``s_θ(y|x) = Σ_{p∈A} log p_θ(y_p | prefix)`` the answer log-probability of one forget
example (``A`` its aligned answer positions) and ``|y|`` its number of answer tokens:

    NPO     L_f = −(2/β) · mean_b log σ(−β (s_θ(y_b|x_b) − s_ref(y_b|x_b)))
    SimNPO  L_f = −(2/β) · mean_b log σ(−β s_θ(y_b|x_b) / |y_b| − γ)

Both are bounded below by 0 (unlike gradient ascent) and their gradient vanishes as the answer
becomes unlikely, which slows the collapse of the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from constrained_unlearn.engine.terms import Terms, TermsFn
from constrained_unlearn.llm.terms import answer_logits, check_batch
from constrained_unlearn.losses import npo_loss, sequence_log_prob, simnpo_loss
from constrained_unlearn.methods.base import (
    Batch,
    Method,
    RetainTerm,
    _check_number,
    forget_metrics,
    make_terms_result,
    on_device_of,
)

__all__ = ["NPO", "NPOTerms", "SimNPO", "SimNPOTerms"]


class NPOTerms:
    """``objective = npo_loss(s_θ, s_ref, β)``, ``"retain"`` = retain NLL.

    Metrics add ``forget_log_ratio``, the batch mean of ``s_θ − s_ref`` (0 at the start,
    negative as the answers are forgotten).
    """

    def __init__(self, reference: torch.nn.Module, beta: float, retain: RetainTerm) -> None:
        self.reference = reference
        self.beta = beta
        self.retain = retain

    def __call__(self, model: torch.nn.Module, forget_batch: Batch, retain_batch: Batch) -> Terms:
        check_batch(forget_batch, "forget_batch")
        check_batch(retain_batch, "retain_batch")
        logits, targets, mask = answer_logits(model, forget_batch)
        log_prob = sequence_log_prob(logits, targets, mask)  # [B]
        reference = on_device_of(self.reference, forget_batch)
        with torch.no_grad():
            ref_logits, _, _ = answer_logits(reference, forget_batch)
            ref_log_prob = sequence_log_prob(ref_logits, targets, mask)
        objective = npo_loss(log_prob, ref_log_prob, beta=self.beta)
        retain, retain_metrics = self.retain(model, retain_batch)
        ratio = {"forget_log_ratio": float((log_prob.detach() - ref_log_prob).mean())}
        return make_terms_result(
            objective, retain, forget_metrics(logits, targets, mask), retain_metrics, ratio
        )


class SimNPOTerms:
    """``objective = simnpo_loss(s_θ/|y|, β, γ)``, ``"retain"`` = retain NLL.

    Metrics add ``forget_avg_log_prob``, the batch mean of ``s_θ/|y|``.
    """

    def __init__(self, beta: float, gamma: float, retain: RetainTerm) -> None:
        self.beta = beta
        self.gamma = gamma
        self.retain = retain

    def __call__(self, model: torch.nn.Module, forget_batch: Batch, retain_batch: Batch) -> Terms:
        check_batch(forget_batch, "forget_batch")
        check_batch(retain_batch, "retain_batch")
        logits, targets, mask = answer_logits(model, forget_batch)
        avg = sequence_log_prob(logits, targets, mask, normalize=True)  # [B]
        objective = simnpo_loss(avg, beta=self.beta, gamma=self.gamma)
        retain, retain_metrics = self.retain(model, retain_batch)
        extra = {"forget_avg_log_prob": float(avg.detach().mean())}
        return make_terms_result(
            objective, retain, forget_metrics(logits, targets, mask), retain_metrics, extra
        )


@dataclass
class NPO(Method):
    """Negative Preference Optimisation (Zhang et al. 2024, "Negative Preference Optimization:
    From Catastrophic Collapse to Effective Unlearning", arXiv 2404.05868) with a retain NLL.

        L(θ) = −(2/β) · mean_b log σ(−β (s_θ(y_b|x_b) − s_ref(y_b|x_b))) + λ · NLL_r(θ)

    ``s_ref`` comes from the frozen starting model θ_ref (built by :meth:`setup`). At θ = θ_ref
    the forget loss is exactly ``(2/β) log 2``.

    Attributes:
        beta: inverse temperature β > 0 (0.1 in the paper and open-unlearning).
        retain_weight: λ (1.0).
    """

    name: ClassVar[str] = "npo"
    paper: ClassVar[str] = "Zhang et al. 2024, arXiv 2404.05868"

    retain_weight: float = 1.0
    beta: float = 0.1

    def validate(self) -> None:
        super().validate()
        _check_number("beta", self.beta, minimum=0.0, strict=True)

    @property
    def needs_reference(self) -> bool:
        return True

    def make_terms(
        self,
        *,
        tokenizer: Any | None = None,
        reference_model: torch.nn.Module | None = None,
        train_retain: bool = True,
    ) -> TermsFn:
        reference = self._require_reference(reference_model)
        return NPOTerms(reference, self.beta, RetainTerm("nll", None, train_retain))


@dataclass
class SimNPO(Method):
    """SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference
    Optimization for LLM Unlearning", arXiv 2410.07163): reference-free, length-normalised NPO
    with a retain NLL.

        L(θ) = −(2/β) · mean_b log σ(−β s_θ(y_b|x_b)/|y_b| − γ) + λ · NLL_r(θ)

    No reference model is built.

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
        _check_number("beta", self.beta, minimum=0.0, strict=True)
        _check_number("gamma", self.gamma, minimum=0.0)

    def make_terms(
        self,
        *,
        tokenizer: Any | None = None,
        reference_model: torch.nn.Module | None = None,
        train_retain: bool = True,
    ) -> TermsFn:
        return SimNPOTerms(self.beta, self.gamma, RetainTerm("nll", None, train_retain))
