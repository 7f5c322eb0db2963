"""PDU for classifiers: ``min L_f(θ)  s.t.  L_r(θ) ≤ ε`` through the library's engine.

``L_f`` is the margin-flattening loss on the forget examples' class logits and ``L_r`` the
cross-entropy on the retain examples ([`ClassifierTerms`][constrained_unlearn.classifier.ClassifierTerms]).
What "flat" means depends on the scenario (``flatten_over``):

* random forgetting — flat over all C classes (PDU's target; on a model that generalises
  well it over-shoots: the forget examples end with a higher loss than unseen data);
* class forgetting — flat over the C − 1 retained classes with the forgotten class's logit
  ``gap`` below them ([`support_margin_loss`][constrained_unlearn.losses.support_margin_loss]). That is what
  the retrained model does on the forgotten class: it never learnt the class, so it spreads the
  prediction over the others and gives the class almost nothing. Flattening over all C classes
  would leave the forgotten class's top-1 accuracy at chance (1/C) instead of ≈ 0.

The bound is either given (``epsilon``) or calibrated on the **full** retain set at the start,

    ε = (1 + slack) · L_r(θ₀),

and the engine is handed the slightly tighter internal target ``ε_int = (1 − tighten) · ε``. The
stochastic primal-dual iterates satisfy ``L_r ≤ ε_int`` on average over steps, and the last
iterate after a decaying learning rate lands close to it, so the tightening keeps the final
model's *full-set* retain loss below ``ε`` (the reported bound). The solver is swapped by one
argument (``solver="gda" | "alternating-gda" | "extragradient" | "nupi" | "augmented-lagrangian"
| "penalty"``); everything else is unchanged.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from constrained_unlearn.classifier.data import ClassifierSplit
from constrained_unlearn.classifier.evaluation import per_example_loss
from constrained_unlearn.classifier.terms import ClassifierTerms
from constrained_unlearn.engine import EngineConfig, History, PairedData, UnlearningEngine
from constrained_unlearn.problem import ConstraintSpec, InfeasibleStartWarning
from constrained_unlearn.solvers import Solver, make_solver

FlattenOver = Literal["auto", "all", "retained"]

__all__ = ["ClassifierUnlearningResult", "unlearn_classifier"]


@dataclass
class ClassifierUnlearningResult:
    """The outcome of [`unlearn_classifier`][constrained_unlearn.classifier.unlearn_classifier].

    Attributes:
        model: the unlearned model (a copy of the input unless ``in_place=True``), eval mode.
        history: the engine's per-step records (objective, retain value, λ, lr …).
        epsilon: the bound ε the result is judged against.
        target: the internal bound ε_int handed to the engine (≤ ε).
        initial_retain_loss: L_r(θ₀) on the full retain set.
        final_retain_loss: L_r(θ_T) on the full retain set after training.
        multipliers: ``{"retain": λ_T}``.
        solver: the solver's description (name and hyper-parameters).
    """

    model: nn.Module
    history: History
    epsilon: float
    target: float
    initial_retain_loss: float
    final_retain_loss: float
    multipliers: dict[str, float]
    solver: dict[str, object] = field(default_factory=dict)

    @property
    def constraint_ratio(self) -> float:
        """``L_r(θ_T) / ε`` (≤ 1 when the constraint holds)."""
        return self.final_retain_loss / self.epsilon


def _retain_loss(model: nn.Module, split: ClassifierSplit) -> float:
    return float(per_example_loss(model, split.x_retain, split.y_retain).mean())


def _build_solver(
    solver: str | Solver,
    multiplier_init: float,
    dual_lr: float,
    solver_kwargs: Mapping[str, Any] | None,
) -> Solver:
    if isinstance(solver, Solver):
        if solver_kwargs:
            raise ValueError("give solver_kwargs only with a solver name, not a Solver object")
        return solver
    # the shared hyper-parameters mean the same for every solver name (the augmented
    # Lagrangian takes dual_lr as its dual step η; its penalty c keeps its default unless
    # solver_kwargs sets it)
    kwargs: dict[str, Any] = {"multiplier_init": multiplier_init, "dual_lr": dual_lr}
    kwargs.update(solver_kwargs or {})
    return make_solver(solver, **kwargs)


def _support(split: ClassifierSplit, flatten_over: str):
    """The ``[C]`` support mask of the forget objective, or ``None`` for "all classes"."""
    if flatten_over not in ("auto", "all", "retained"):
        raise ValueError(f"flatten_over must be 'auto', 'all' or 'retained', got {flatten_over!r}")
    if flatten_over == "auto":
        flatten_over = "retained" if split.forget_class is not None else "all"
    if flatten_over == "all":
        return None
    if split.forget_class is None:
        raise ValueError(
            "flatten_over='retained' needs a class-forgetting split (split.forget_class is "
            "None for random forgetting); use flatten_over='all' or 'auto'"
        )
    support = torch.ones(split.num_classes, dtype=torch.bool)
    support[split.forget_class] = False
    return support


def unlearn_classifier(
    model: nn.Module,
    split: ClassifierSplit,
    *,
    solver: str | Solver = "gda",
    epsilon: float | None = None,
    slack: float = 0.1,
    tighten: float = 0.02,
    epochs: int = 60,
    lr: float = 3e-3,
    batch_size: int = 32,
    retain_batch_size: int = 128,
    multiplier_init: float = 50.0,
    dual_lr: float = 2000.0,
    solver_kwargs: Mapping[str, Any] | None = None,
    lr_scheduler: Literal["constant", "linear", "cosine"] = "cosine",
    max_grad_norm: float | None = None,
    flatten_over: FlattenOver = "auto",
    gap: float = 5.0,
    seed: int = 0,
    in_place: bool = False,
    progress: bool = False,
) -> ClassifierUnlearningResult:
    """Unlearn ``split``'s forget set from ``model`` with a primal-dual solver.

    Solves ``min_θ L_f(θ) s.t. L_r(θ) ≤ ε`` with [`UnlearningEngine`][constrained_unlearn.engine.UnlearningEngine]:
    each optimiser step pairs a forget batch ``[batch_size, D]`` with a retain batch
    ``[retain_batch_size, D]`` ([`PairedData`][constrained_unlearn.engine.PairedData] over
    ``TensorDataset`` items), takes an AdamW step on the Lagrangian ``L_f + λ (L_r − ε_int)``
    and a dual step ``λ ← max(0, λ + η (L_r − ε_int))`` (for ``gda``; other solvers differ only
    in the update).

    Args:
        model: a classifier ``[B, D] → [B, C]`` (e.g. from [`make_mlp`][constrained_unlearn.classifier.make_mlp]); not modified
            unless ``in_place``.
        split: the forget/retain/test split.
        solver: a solver name or object (see module doc).
        epsilon: the bound ε on the mean retain cross-entropy; ``None`` calibrates
            ``ε = (1 + slack) · L_r(θ₀)`` on the full retain set.
        slack: α of the calibration, ≥ 0 (ignored when ``epsilon`` is given).
        tighten: the engine's target is ``(1 − tighten) · ε``, in [0, 1).
        epochs: passes over the forget set.
        lr: AdamW learning rate of the primal step (peak of the schedule).
        batch_size: forget examples per step.
        retain_batch_size: retain examples per step.
        multiplier_init: λ₀ (the margin loss is large, so λ₀ is large too).
        dual_lr: η, the dual step size (retain violations are small numbers, so η is large);
            the same for every solver (the augmented Lagrangian's penalty ``c`` is a separate
            ``solver_kwargs={"penalty": c}``).
        solver_kwargs: extra or overriding solver hyper-parameters (e.g. ``{"kp": 5.0}`` for
            nupi, ``{"warmup_steps": 10}``).
        lr_scheduler: primal learning-rate decay (see [`EngineConfig`][constrained_unlearn.engine.EngineConfig]).
        max_grad_norm: clip the primal gradient (``None``: no clipping).
        flatten_over: the classes the forget output is flattened over: ``"all"`` (uniform over
            C), ``"retained"`` (uniform over the classes other than ``split.forget_class``,
            which is pushed ``gap`` below; class forgetting only) or ``"auto"`` (``"retained"``
            for class forgetting, ``"all"`` for random forgetting).
        gap: with ``"retained"``, the distance ≥ 0 of the forgotten class's logit below the
            mean retained logit (``gap = 5``: the class gets ≤ e⁻⁵ of a retained class's mass).
        seed: seed of the batch order and of the engine.
        in_place: modify ``model`` itself instead of a deep copy.
        progress: show the engine's progress bar.

    Returns:
        A [`ClassifierUnlearningResult`][constrained_unlearn.classifier.ClassifierUnlearningResult].
    """
    if epsilon is not None and not (
        isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0
    ):
        raise ValueError(
            f"epsilon must be a finite number > 0 or None (calibrate), got {epsilon!r}"
        )
    if not (isinstance(slack, (int, float)) and math.isfinite(slack) and slack >= 0):
        raise ValueError(f"slack must be a finite number ≥ 0, got {slack!r}")
    if not 0.0 <= tighten < 1.0:
        raise ValueError(f"tighten must be in [0, 1), got {tighten!r}")
    if not isinstance(split, ClassifierSplit):
        raise TypeError(f"split must be a ClassifierSplit, got {type(split).__name__}")
    support = _support(split, flatten_over)
    terms = ClassifierTerms(support=support, gap=gap)  # validates the gap before any compute
    solver_obj = _build_solver(solver, multiplier_init, dual_lr, solver_kwargs)
    if not in_place:
        model = copy.deepcopy(model)
    initial = _retain_loss(model, split)
    bound = float(epsilon) if epsilon is not None else (1.0 + slack) * initial
    if bound <= 0:
        raise ValueError(
            f"the calibrated epsilon is {bound} (retain loss at the start {initial}); give an "
            "explicit epsilon > 0"
        )
    target = (1.0 - tighten) * bound
    data = PairedData(
        split.forget_dataset(),
        split.retain_dataset(),
        batch_size=batch_size,
        retain_batch_size=retain_batch_size,
        seed=seed,
    )
    engine = UnlearningEngine(
        model,
        terms,
        data,
        constraints=[ConstraintSpec("retain", bound=target)],
        solver=solver_obj,
        lr=lr,
        config=EngineConfig(
            epochs=epochs,
            lr_scheduler=lr_scheduler,
            max_grad_norm=max_grad_norm,
            cpu=True,
            seed=seed,
            progress=progress,
            infeasible_patience=None,
        ),
    )
    if initial > target:
        warnings.warn(
            f"the retain loss at the start ({initial:.4g}, full retain set) is above the target "
            f"{target:.4g} = (1 − tighten) · ε: training first pushes it down; raise epsilon if "
            "that is not intended",
            InfeasibleStartWarning,
            stacklevel=2,
        )
    with warnings.catch_warnings():
        # the engine re-checks feasibility on a few batches; the full-set check above replaces it
        warnings.filterwarnings("ignore", category=InfeasibleStartWarning)
        history = engine.fit()
    unlearned = engine.unwrapped_model
    unlearned.eval()
    return ClassifierUnlearningResult(
        model=unlearned,
        history=history,
        epsilon=bound,
        target=target,
        initial_retain_loss=initial,
        final_retain_loss=_retain_loss(unlearned, split),
        multipliers=engine.problem.multiplier_values(),
        solver=solver_obj.describe(),
    )
