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

from constrained_unlearn.llm.terms import ForgetObjective, LMView, RetainTerm
from constrained_unlearn.methods.base import Method, check_number

__all__ = ["RMU", "control_vector", "rmu_forget_objective", "rmu_retain_term"]


def control_vector(hidden_size: int, seed: int = 0) -> torch.Tensor:
    """The fixed random unit vector ``u ∈ R^d``: ``U[0, 1)^d`` normalised (float32, CPU)."""
    if hidden_size < 1:
        raise ValueError(f"hidden_size must be ≥ 1, got {hidden_size}")
    generator = torch.Generator().manual_seed(int(seed))
    u = torch.rand(hidden_size, generator=generator, dtype=torch.float32)
    return u / u.norm()


def _layer_states(view: LMView, layer: int | None) -> tuple[torch.Tensor, int]:
    """Hidden states ``[N, d]`` (float32) of layer ℓ at the aligned answer positions, and ℓ."""
    states = view.hidden_states
    if states is None:
        raise ValueError("the model returned no hidden_states; RMU needs output_hidden_states")
    last = len(states) - 1
    index = max(1, last // 2) if layer is None else layer
    if not 0 <= index <= last:
        raise ValueError(f"RMU layer {index} is out of range: this model has layers 0..{last}")
    return states[index][:, :-1][view.mask].float(), index


@dataclass(frozen=True)
class _RMUForget:
    layer: int | None
    steering_coefficient: float
    seed: int

    def __call__(self, view: LMView, reference: LMView | None) -> tuple[torch.Tensor, dict]:
        h, index = _layer_states(view, self.layer)
        target = self.steering_coefficient * control_vector(h.shape[-1], self.seed).to(h.device)
        loss = ((h - target) ** 2).mean()
        norm = h.detach().norm(dim=-1).mean()
        return loss, {"forget_hidden_norm": norm, "rmu_layer": float(index)}


@dataclass(frozen=True)
class _RMURetain:
    layer: int | None

    def __call__(self, view: LMView, reference: LMView | None) -> torch.Tensor:
        assert reference is not None
        h, _ = _layer_states(view, self.layer)
        h_ref, _ = _layer_states(reference, self.layer)
        return ((h - h_ref) ** 2).mean()


def rmu_forget_objective(
    layer: int | None, steering_coefficient: float, seed: int = 0
) -> ForgetObjective:
    """``L_f = mean ‖h_θ^ℓ − c·u‖²`` over the forget answer positions (hidden states)."""
    loss = _RMUForget(layer, float(steering_coefficient), int(seed))
    return ForgetObjective("rmu", loss, hidden_states=True, needs="the hidden states at layer ℓ")


def rmu_retain_term(layer: int | None) -> RetainTerm:
    """``L_r = mean ‖h_θ^ℓ − h_ref^ℓ‖²`` over the retain answer positions (a divergence)."""
    return RetainTerm(
        "hidden-mse",
        _RMURetain(layer),
        needs_reference=True,
        hidden_states=True,
        is_divergence=True,
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
        check_number("steering_coefficient", self.steering_coefficient, minimum=0.0, strict=True)
        if self.layer is not None and (
            isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0
        ):
            raise ValueError(f"layer must be None or an integer ≥ 0, got {self.layer!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        return rmu_forget_objective(self.layer, self.steering_coefficient, self.seed)

    def retain_term(self) -> RetainTerm:
        return rmu_retain_term(self.layer)
