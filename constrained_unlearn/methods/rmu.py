"""RMU: representation misdirection (Li et al. 2024, "The WMDP Benchmark: Measuring and
Reducing Malicious Use With Unlearning", arXiv 2403.03218).

With ``h_θ^ℓ(p) ∈ R^d`` the hidden state at layer ℓ and position ``p``, ``u`` a fixed random
unit vector and ``c`` the steering coefficient:

    L_f = (1/(|A_f| d)) Σ_{p∈A_f} ‖h_θ^ℓ(p) − c·u‖²           forget states pushed toward c·u
    L_r = (1/(|A_r| d)) Σ_{p∈A_r} ‖h_θ^ℓ(p) − h_ref^ℓ(p)‖²    retain states kept near θ_ref's

(the element-wise mean squared error of the paper's ``F.mse_loss``), minimised as
``L_f + α L_r``. As everywhere in this library the positions ``A`` are the ones that predict
answer tokens (DESIGN.md invariant 5): the hidden state at ``t`` produces the logits for ``t+1``.

``u`` is drawn as in the paper, uniform on ``[0, 1)^d`` and normalised, from a seeded generator
(so every rank and every resume gets the same vector).

Layer convention: ``ℓ`` indexes the model's ``output_hidden_states`` tuple — ``0`` is the
embedding output, ``k`` (1 ≤ k < L) the output of decoder block ``k``, and ``L`` the final,
normalised state. The paper also trains only the MLPs of layers ℓ−2..ℓ; here the engine trains
whatever parameters have ``requires_grad`` (freeze the others to reproduce that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from constrained_unlearn.engine.terms import Terms, TermsFn
from constrained_unlearn.llm.terms import check_batch
from constrained_unlearn.losses import next_token_alignment, token_nll
from constrained_unlearn.methods.base import (
    Batch,
    Method,
    _check_number,
    forget_metrics,
    make_terms_result,
    on_device_of,
)

__all__ = ["RMU", "RMUTerms", "control_vector"]


def control_vector(hidden_size: int, seed: int = 0) -> torch.Tensor:
    """The fixed random unit vector ``u ∈ R^d``: ``U[0, 1)^d`` normalised (float32, CPU)."""
    if hidden_size < 1:
        raise ValueError(f"hidden_size must be ≥ 1, got {hidden_size}")
    generator = torch.Generator().manual_seed(int(seed))
    u = torch.rand(hidden_size, generator=generator, dtype=torch.float32)
    return u / u.norm()


def _hidden_and_logits(
    model: torch.nn.Module, batch: Batch, layer: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        use_cache=False,
        output_hidden_states=True,
    )
    states = out.hidden_states
    if states is None:
        raise ValueError("the model returned no hidden_states; RMU needs output_hidden_states")
    last = len(states) - 1
    index = max(1, last // 2) if layer is None else layer
    if not 0 <= index <= last:
        raise ValueError(f"RMU layer {index} is out of range: this model has layers 0..{last}")
    return states[index], out.logits, index


class RMUTerms:
    """``objective`` = forget MSE to ``c·u``, ``"retain"`` = retain MSE to θ_ref's states.

    Metrics: ``forget_nll`` and ``retain_nll`` (from the same forward's logits),
    ``forget_hidden_norm`` (mean ‖h^ℓ‖ on the forget positions), token counts and ``rmu_layer``.
    """

    def __init__(
        self,
        reference: torch.nn.Module,
        layer: int | None,
        steering_coefficient: float,
        seed: int,
        train_retain: bool = True,
    ) -> None:
        self.reference = reference
        self.layer = layer
        self.steering_coefficient = float(steering_coefficient)
        self.seed = int(seed)
        self.train_retain = train_retain
        self._u: torch.Tensor | None = None

    def target(self, hidden_size: int, like: torch.Tensor) -> torch.Tensor:
        """``c·u`` of size ``d`` on ``like``'s device (float32)."""
        if self._u is None or self._u.numel() != hidden_size:
            self._u = control_vector(hidden_size, self.seed)
        return self.steering_coefficient * self._u.to(like.device)

    def __call__(self, model: torch.nn.Module, forget_batch: Batch, retain_batch: Batch) -> Terms:
        check_batch(forget_batch, "forget_batch")
        check_batch(retain_batch, "retain_batch")
        h_f, f_logits, layer = _hidden_and_logits(model, forget_batch, self.layer)
        f_logits, f_targets, f_mask = next_token_alignment(f_logits, forget_batch["labels"])
        h_f = h_f[:, :-1][f_mask].float()  # [N_f, d]
        objective = ((h_f - self.target(h_f.shape[-1], h_f)) ** 2).mean()

        h_r, r_logits, _ = _hidden_and_logits(model, retain_batch, layer)
        r_logits, r_targets, r_mask = next_token_alignment(r_logits, retain_batch["labels"])
        reference = on_device_of(self.reference, retain_batch)
        with torch.no_grad():
            h_ref, _, _ = _hidden_and_logits(reference, retain_batch, layer)
            h_ref = h_ref[:, :-1][r_mask].float()
        h_r = h_r[:, :-1][r_mask].float()
        if not self.train_retain:
            h_r = h_r.detach()
        retain = ((h_r - h_ref) ** 2).mean()

        with torch.no_grad():
            extra = {
                "retain_nll": float(token_nll(r_logits.detach(), r_targets, r_mask)),
                "retain_tokens": float(r_mask.sum()),
                "forget_hidden_norm": float(h_f.detach().norm(dim=-1).mean()),
                "rmu_layer": float(layer),
            }
        return make_terms_result(
            objective, retain, forget_metrics(f_logits, f_targets, f_mask), extra
        )


@dataclass
class RMU(Method):
    """Representation misdirection for unlearning (Li et al. 2024, arXiv 2403.03218).

        L(θ) = mean ‖h_θ^ℓ − c·u‖² (forget) + α · mean ‖h_θ^ℓ − h_ref^ℓ‖² (retain)

    Runs with the ``penalty`` solver at λ = α by default. Needs θ_ref (for the retain states).
    The retain term is 0 at θ₀, so a primal-dual run needs an explicit ε (``setup(model,
    solver="gda", epsilon=...)``): the bound then caps the mean squared drift of the retain
    hidden states.

    Attributes:
        layer: ℓ, an index into ``output_hidden_states`` (``None``: the middle, ``L // 2``).
            The paper uses layer 7 of Zephyr-7B's 32.
        steering_coefficient: c (6.5 in the paper for Zephyr-7B; scale it with the typical
            hidden-state norm of your model).
        retain_weight: α (1200 in the paper for Zephyr-7B).
        seed: seed of the random direction u.
    """

    name: ClassVar[str] = "rmu"
    paper: ClassVar[str] = "Li et al. 2024, arXiv 2403.03218"

    retain_weight: float = 1200.0
    layer: int | None = None
    steering_coefficient: float = 6.5
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        _check_number("steering_coefficient", self.steering_coefficient, minimum=0.0, strict=True)
        if self.layer is not None and (
            isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0
        ):
            raise ValueError(f"layer must be None or an integer ≥ 0, got {self.layer!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    @property
    def needs_reference(self) -> bool:
        return True

    @property
    def retain_is_divergence(self) -> bool:
        return True

    def make_terms(
        self,
        *,
        tokenizer: Any | None = None,
        reference_model: torch.nn.Module | None = None,
        train_retain: bool = True,
    ) -> TermsFn:
        reference = self._require_reference(reference_model)
        return RMUTerms(
            reference, self.layer, self.steering_coefficient, self.seed, train_retain=train_retain
        )
