"""PDU: primal-dual unlearning (Entesari et al. 2025, "Constrained Entropic Unlearning: A
Primal-Dual Framework for Large Language Models", arXiv 2506.05314).

    minimise   L_f(θ) = (1/|A_f|) Σ_{p∈A_f} (max_k z_{p,k} − mean_k z_{p,k})²
    subject to NLL_r(θ) ≤ ε

solved on the Lagrangian ``L_f + λ (NLL_r − ε)`` with the dual ascent
``λ ← max(0, λ + η (NLL_r − ε))``. The ablation PDU-entropy replaces the margin by
``KL(softmax(z_p) ‖ uniform)``, whose gradient vanishes near the uniform output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from constrained_unlearn.engine.terms import TermsFn
from constrained_unlearn.llm.terms import CausalLMTerms
from constrained_unlearn.methods.base import Method

__all__ = ["PDU", "PDUEntropy"]


@dataclass
class PDU(Method):
    """PDU (Entesari et al. 2025, arXiv 2506.05314): margin flattening s.t. retain NLL ≤ ε.

        L(θ, λ) = (1/|A_f|) Σ_{p∈A_f} (max_k z_{p,k} − mean_k z_{p,k})² + λ (NLL_r(θ) − ε)

    Default solver ``gda`` with λ₀ = 100 and η = 5 (the margin loss is large on LLMs);
    ``solver="penalty"`` freezes λ at λ₀ (a scalarised margin baseline).

    Attributes:
        retain_weight: λ₀ (100).
        dual_lr: η (5.0).
        fused: run forget and retain batches as one forward (same values, fewer launches).
        pad_token_id: id used to widen ``input_ids`` in fused mode (masked).
        chunk_size: compute the losses in chunks fused with the LM head (logits never
            materialised; margin loss only), see :class:`~constrained_unlearn.llm.CausalLMTerms`.
    """

    name: ClassVar[str] = "pdu"
    paper: ClassVar[str] = "Entesari et al. 2025, arXiv 2506.05314"
    default_solver: ClassVar[str] = "gda"
    forget_loss: ClassVar[Literal["margin", "entropy"]] = "margin"

    retain_weight: float = 100.0
    dual_lr: float = 5.0
    fused: bool = False
    pad_token_id: int = 0
    chunk_size: int | None = None

    def make_terms(
        self,
        *,
        tokenizer: Any | None = None,
        reference_model: torch.nn.Module | None = None,
        train_retain: bool = True,
    ) -> TermsFn:
        pad = self.pad_token_id
        if tokenizer is not None and getattr(tokenizer, "pad_token_id", None) is not None:
            pad = int(tokenizer.pad_token_id)
        return CausalLMTerms(
            forget_loss=self.forget_loss,
            fused=self.fused,
            pad_token_id=pad,
            chunk_size=self.chunk_size,
        )


@dataclass
class PDUEntropy(PDU):
    """PDU-entropy, the ablation of Entesari et al. 2025 (arXiv 2506.05314): the forget
    objective is the KL divergence to the uniform distribution (= log V − entropy),

        L_f = (1/|A_f|) Σ_{p∈A_f} KL(softmax(z_p) ‖ uniform),

    with the same constraint NLL_r ≤ ε and the same solver defaults as :class:`PDU`.
    """

    name: ClassVar[str] = "pdu-entropy"
    forget_loss: ClassVar[Literal["margin", "entropy"]] = "entropy"
