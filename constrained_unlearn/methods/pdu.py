"""PDU: primal-dual unlearning (Entesari et al. 2025, "Constrained Entropic Unlearning: A
Primal-Dual Framework for Large Language Models", arXiv 2506.05314).

    minimise   L_f(θ) = (1/|A_f|) Σ_{p∈A_f} (max_k z_{p,k} − mean_k z_{p,k})²
    subject to NLL_r(θ) ≤ ε

solved on the Lagrangian ``L_f + λ (NLL_r − ε)`` with the dual ascent
``λ ← max(0, λ + η (NLL_r − ε))``. The ablation PDU-entropy replaces the margin by
``KL(softmax(z_p) ‖ uniform)``, whose gradient vanishes near the uniform output.

Both are data over the shared LM terms: the objective is a function of the forget logits
(`PDU_MARGIN`, `PDU_ENTROPY`); the margin one can be chunked with the LM head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from constrained_unlearn.llm.terms import ENTROPY_OBJECTIVE, MARGIN_OBJECTIVE, ForgetObjective
from constrained_unlearn.methods.base import Method

__all__ = ["PDU", "PDU_ENTROPY", "PDU_MARGIN", "PDUEntropy"]

PDU_MARGIN = MARGIN_OBJECTIVE
"""PDU's forget objective: the mean squared logit margin (chunkable)."""
PDU_ENTROPY = ENTROPY_OBJECTIVE
"""The ablation's forget objective: mean ``KL(softmax(z) ‖ uniform)``."""


@dataclass
class PDU(Method):
    """PDU (Entesari et al. 2025, arXiv 2506.05314): margin flattening s.t. retain NLL ≤ ε.

        L(θ, λ) = (1/|A_f|) Σ_{p∈A_f} (max_k z_{p,k} − mean_k z_{p,k})² + λ (NLL_r(θ) − ε)

    Default solver ``gda`` with λ₀ = 100 and η = 5 (the margin loss is large on LLMs);
    ``solver="penalty"`` freezes λ at λ₀ (a scalarised margin baseline). Chunked LM-head-fused
    losses: ``setup(..., lm_options={"chunk_size": 1024})``.

    Attributes:
        retain_weight: λ₀ (100).
        dual_lr: η (5.0).
    """

    name: ClassVar[str] = "pdu"
    paper: ClassVar[str] = "Entesari et al. 2025, arXiv 2506.05314"
    default_solver: ClassVar[str] = "gda"

    retain_weight: float = 100.0
    dual_lr: float = 5.0

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        return PDU_MARGIN


@dataclass
class PDUEntropy(PDU):
    """PDU-entropy, the ablation of Entesari et al. 2025 (arXiv 2506.05314): the forget
    objective is the KL divergence to the uniform distribution (= log V − entropy),

        L_f = (1/|A_f|) Σ_{p∈A_f} KL(softmax(z_p) ‖ uniform),

    with the same constraint NLL_r ≤ ε and the same solver defaults as [`PDU`][constrained_unlearn.methods.PDU].
    """

    name: ClassVar[str] = "pdu-entropy"

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        return PDU_ENTROPY
