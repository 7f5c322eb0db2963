"""Unlearning methods as data over the one engine and the one LM terms.

Every method gives a forget objective and a retain term (run by
[`CausalLMTerms`][constrained_unlearn.llm.CausalLMTerms]), a default solver treatment (scalarised
baselines: ``penalty`` with λ fixed at the method's weight; PDU: ``gda``) and says whether it
needs a frozen reference model. Any method runs with a constraint instead of a fixed weight:
``get_method("npo").setup(model, solver="gda", epsilon=0.9)``.

    method = get_method("grad-diff", retain_weight=2.0)
    setup = method.setup(model, tokenizer, lm_options={"fused": True})
    engine = UnlearningEngine(model, data=data, **setup.engine_kwargs(), config=config)
"""

from constrained_unlearn.methods.altpo import AltPO, alternates_from_rows, load_alternates
from constrained_unlearn.methods.base import (
    LM_OPTIONS,
    NOMINAL_EPSILON,
    Method,
    MethodSetup,
    freeze_reference,
)
from constrained_unlearn.methods.distillation import CEU, UNDIAL
from constrained_unlearn.methods.gradient import GradAscent, GradDiff
from constrained_unlearn.methods.idk_dpo import IdkDPO, dpo_loss, refusal_batch
from constrained_unlearn.methods.npo import NPO, SimNPO
from constrained_unlearn.methods.pdu import PDU, PDUEntropy
from constrained_unlearn.methods.refusals import REFUSALS
from constrained_unlearn.methods.registry import (
    ALIASES,
    METHODS,
    get_method,
    method_names,
    register_method,
)
from constrained_unlearn.methods.reweighted import WGA, SatImp
from constrained_unlearn.methods.rmu import RMU, control_vector

__all__ = [
    "ALIASES",
    "CEU",
    "LM_OPTIONS",
    "METHODS",
    "NOMINAL_EPSILON",
    "NPO",
    "PDU",
    "REFUSALS",
    "RMU",
    "UNDIAL",
    "WGA",
    "AltPO",
    "GradAscent",
    "GradDiff",
    "IdkDPO",
    "Method",
    "MethodSetup",
    "PDUEntropy",
    "SatImp",
    "SimNPO",
    "alternates_from_rows",
    "control_vector",
    "dpo_loss",
    "freeze_reference",
    "get_method",
    "load_alternates",
    "method_names",
    "register_method",
    "refusal_batch",
]
