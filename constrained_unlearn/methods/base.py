"""What every unlearning method shares: a preset over the one engine.

A method is a small object that says three things:

(a) its **terms function** ``terms_fn(model, forget_batch, retain_batch) -> Terms`` for causal
    LMs: the forget objective ``L_f`` and the retain quantity ``{"retain": L_r}``;
(b) its **default solver treatment**: scalarised baselines run with the ``penalty`` solver, whose
    multiplier is frozen at the method's weight, so that the engine minimises

        L_f(θ) + λ₀ · (L_r(θ) − ε)        (same gradient as L_f + λ₀ L_r: ε only shifts logs)

    while PDU runs a primal-dual solver (``gda``) that moves λ;
(c) whether it needs a **frozen reference model** θ_ref (NPO, IdkDPO, RMU, GradDiff with a KL
    retain term). The reference is only built when the loss uses it; it is kept in eval mode
    with ``requires_grad=False`` and only ever run under ``torch.no_grad``.

Because every method is "an objective plus a named retain constraint", any method runs with a
constraint ``L_r ≤ ε`` instead of a fixed weight: pass ``solver="gda"`` (or any other primal-dual
solver) and the weight becomes the initial multiplier λ₀.

Batches are the right-padded dicts of :func:`~constrained_unlearn.llm.pad_collate`
(``input_ids``, ``attention_mask`` and ``labels`` ``[B, T]``, ``-100`` on prompt and padding).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from constrained_unlearn.engine.terms import Terms, TermsFn
from constrained_unlearn.llm.terms import answer_logits, kl_to_reference
from constrained_unlearn.losses import token_nll
from constrained_unlearn.problem import ConstraintSpec
from constrained_unlearn.solvers import SOLVERS

Batch = Mapping[str, torch.Tensor]

__all__ = ["NOMINAL_EPSILON", "Batch", "Method", "MethodSetup", "freeze_reference"]

NOMINAL_EPSILON = 1e-3
"""ε given to the ``penalty`` solver when ``L_r`` is 0 at θ₀ (its gradient ignores ε)."""


def freeze_reference(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy θ_ref of ``model``: deep copy, eval mode, ``requires_grad=False``."""
    reference = copy.deepcopy(model)
    reference.eval()
    reference.requires_grad_(False)
    return reference


def _normalise_solver(solver: str) -> str:
    if not isinstance(solver, str):
        raise TypeError(f"solver must be a solver name, got {type(solver).__name__}")
    key = solver.strip().lower().replace("_", "-")
    if key not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {sorted(SOLVERS)}")
    return key


@dataclass
class MethodSetup:
    """Everything the engine needs to run one method.

    Attributes:
        method: the method object.
        terms_fn: ``(model, forget_batch, retain_batch) -> Terms``.
        solver: solver name (``"penalty"``, ``"gda"`` …).
        solver_kwargs: the solver's hyper-parameters (``multiplier_init`` = the method's weight).
        constraints: one ``ConstraintSpec("retain", bound=ε, slack=α)``.
        reference_model: the frozen reference, or ``None`` when the method does not use one.
    """

    method: Method
    terms_fn: TermsFn
    solver: str
    solver_kwargs: dict[str, Any]
    constraints: list[ConstraintSpec]
    reference_model: torch.nn.Module | None = None

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~constrained_unlearn.engine.UnlearningEngine`:

        ``UnlearningEngine(model, data=data, **setup.engine_kwargs(), config=...)``.
        """
        return {
            "terms_fn": self.terms_fn,
            "constraints": list(self.constraints),
            "solver": self.solver,
            "solver_kwargs": dict(self.solver_kwargs),
        }

    def params(self) -> dict[str, Any]:
        """Loggable parameters: ``method.name``, ``method.solver``, the method's options and
        the solver's hyper-parameters (``method.solver_kwargs.*``)."""
        out = {f"method.{k}": v for k, v in self.method.options().items()}
        out["method.name"] = self.method.name
        out["method.solver"] = self.solver
        out["method.needs_reference"] = self.reference_model is not None
        for key, value in self.solver_kwargs.items():
            out[f"method.solver_kwargs.{key}"] = value
        return out


@dataclass
class Method:
    """Base class of the unlearning methods.

    Attributes:
        retain_weight: the weight λ of the retain term. With the ``penalty`` solver it is the
            fixed multiplier; with a primal-dual solver it is λ₀, the starting multiplier.
        dual_lr: the dual step size η used when the method is switched to a primal-dual solver
            (ignored by ``penalty`` and ``augmented-lagrangian``, whose step is its penalty c).
    """

    name: ClassVar[str] = "base"
    paper: ClassVar[str] = ""
    default_solver: ClassVar[str] = "penalty"

    retain_weight: float = 1.0
    dual_lr: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the options; errors name the option and the fix."""
        _check_number("retain_weight", self.retain_weight, minimum=0.0)
        _check_number("dual_lr", self.dual_lr, minimum=0.0)

    # -- what the method declares ---------------------------------------------------------
    @property
    def needs_reference(self) -> bool:
        """Whether the loss uses a frozen reference model θ_ref."""
        return False

    @property
    def retain_is_divergence(self) -> bool:
        """Whether ``L_r`` measures a distance to θ_ref (KL, hidden-state MSE): it is then 0 at
        θ₀, and ε cannot be calibrated as ``(1 + α) L_r(θ₀)``."""
        return False

    def options(self) -> dict[str, Any]:
        """The method's options as a flat dict (for logging)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def make_terms(
        self,
        *,
        tokenizer: Any | None = None,
        reference_model: torch.nn.Module | None = None,
        train_retain: bool = True,
    ) -> TermsFn:
        """The terms function of this method.

        Args:
            tokenizer: needed only by methods that build new sequences (IdkDPO).
            reference_model: the frozen θ_ref, required iff :attr:`needs_reference`.
            train_retain: whether the retain term needs a graph. ``False`` only when its
                weight is frozen at 0 (GradAscent with the penalty solver): it is then computed
                under ``torch.no_grad`` for the logs only.
        """
        raise NotImplementedError

    # -- solver treatment -----------------------------------------------------------------
    def solver_settings(self, solver: str | None = None, **overrides: Any) -> tuple[str, dict]:
        """``(solver name, solver kwargs)`` for this method.

        The method's weight is the multiplier: fixed under ``penalty``, the starting value λ₀
        under a primal-dual solver (which also gets ``dual_lr``). ``overrides`` win.
        """
        name = _normalise_solver(solver or self.default_solver)
        kwargs: dict[str, Any] = {"multiplier_init": float(self.retain_weight)}
        if name not in ("penalty", "augmented-lagrangian"):
            kwargs["dual_lr"] = float(self.dual_lr)
        kwargs.update(overrides)
        return name, kwargs

    # -- building -------------------------------------------------------------------------
    def build_reference(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """A frozen copy of ``model`` if the method needs one, else ``None`` (nothing copied)."""
        return freeze_reference(model) if self.needs_reference else None

    def setup(
        self,
        model: torch.nn.Module,
        tokenizer: Any | None = None,
        *,
        solver: str | None = None,
        epsilon: float | None = None,
        slack: float = 0.1,
        reference_model: torch.nn.Module | None = None,
        **solver_overrides: Any,
    ) -> MethodSetup:
        """Terms, solver and constraint for one run of this method on ``model``.

        Args:
            model: the model to unlearn (its frozen copy becomes θ_ref when needed).
            tokenizer: the model's tokenizer (required by IdkDPO).
            solver: solver name; default :attr:`default_solver`.
            epsilon: ε of the retain constraint; ``None`` calibrates ``(1 + slack) L_r(θ₀)``.
                When ``L_r`` is a divergence to θ_ref (zero at θ₀) there is nothing to calibrate:
                the ``penalty`` solver then gets the nominal :data:`NOMINAL_EPSILON` (ε only
                shifts the logged violation, not the gradient) and a primal-dual solver
                requires an explicit ``epsilon``.
            slack: α of the calibration.
            reference_model: an explicit frozen reference (e.g. loaded from disk) instead of a
                copy of ``model``; only for methods that use one.
            **solver_overrides: solver hyper-parameters (``multiplier_init``, ``dual_lr``,
                ``warmup_steps`` …).
        """
        name, kwargs = self.solver_settings(solver, **solver_overrides)
        if epsilon is None and self.retain_is_divergence:
            if name != "penalty":
                raise ValueError(
                    f"method {self.name!r} with solver {name!r}: the retain term is a divergence "
                    "to the reference model, 0 at the start, so ε cannot be calibrated from it; "
                    "pass epsilon= (e.g. a small positive value such as 0.05)"
                )
            epsilon = NOMINAL_EPSILON
        if reference_model is not None:
            if not self.needs_reference:
                raise ValueError(
                    f"method {self.name!r} does not use a reference model; do not pass one"
                )
            reference_model.eval()
            reference_model.requires_grad_(False)
        else:
            reference_model = self.build_reference(model)
        train_retain = not (name == "penalty" and _is_zero(kwargs.get("multiplier_init")))
        terms_fn = self.make_terms(
            tokenizer=tokenizer, reference_model=reference_model, train_retain=train_retain
        )
        constraints = [ConstraintSpec("retain", bound=epsilon, slack=slack)]
        return MethodSetup(self, terms_fn, name, kwargs, constraints, reference_model)

    def terms(
        self,
        model: torch.nn.Module | None = None,
        tokenizer: Any | None = None,
        config: Any | None = None,
        reference_model: torch.nn.Module | None = None,
    ) -> TermsFn:
        """Just the terms function (for callers that choose the solver themselves).

        ``config`` may be a :class:`~constrained_unlearn.recipes.config.RunConfig`: its
        ``method.solver`` and ``method.multiplier_init`` decide whether the retain term needs a
        graph. Builds θ_ref from ``model`` when the method needs one and none is given.
        """
        train_retain = True
        method_cfg = getattr(config, "method", None)
        if method_cfg is not None:
            solver = _normalise_solver(getattr(method_cfg, "solver", self.default_solver))
            lam = getattr(method_cfg, "multiplier_init", self.retain_weight)
            train_retain = not (solver == "penalty" and _is_zero(lam))
        if self.needs_reference and reference_model is None:
            if model is None:
                raise ValueError(
                    f"method {self.name!r} needs a reference model: pass model= (a frozen copy "
                    "is made) or reference_model="
                )
            reference_model = freeze_reference(model)
        elif reference_model is not None and not self.needs_reference:
            raise ValueError(f"method {self.name!r} does not use a reference model")
        return self.make_terms(
            tokenizer=tokenizer, reference_model=reference_model, train_retain=train_retain
        )

    def _require_reference(self, reference_model: torch.nn.Module | None) -> torch.nn.Module:
        if reference_model is None:
            raise ValueError(
                f"method {self.name!r} needs a frozen reference model; build one with "
                "Method.setup(model) or freeze_reference(model)"
            )
        return reference_model


def _is_zero(value: Any) -> bool:
    if isinstance(value, Mapping):
        return all(float(v) == 0.0 for v in value.values())
    return value is not None and float(value) == 0.0


def _check_number(name: str, value: Any, *, minimum: float | None = None, strict=False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        sign = ">" if strict else "≥"
        raise ValueError(f"{name} must be {sign} {minimum}, got {value}")


# -- shared causal-LM pieces -----------------------------------------------------------------
def on_device_of(reference: torch.nn.Module, batch: Batch) -> torch.nn.Module:
    """Move the reference to the batch's device the first time they differ (the engine moves
    the trained model with accelerate; the reference is not prepared)."""
    device = batch["input_ids"].device
    first = next(reference.parameters(), None)
    if first is not None and first.device != device:
        reference.to(device)
    if reference.training:
        reference.eval()
    return reference


@dataclass
class RetainTerm:
    """The retain quantity of the scalarised LM methods.

        "nll":  L_r = −(1/|A_r|) Σ_{p∈A_r} log p_θ(y_p | prefix)
        "kl":   L_r = (1/|A_r|) Σ_{p∈A_r} KL(p_θ(·|p) ‖ p_ref(·|p))

    over the aligned answer positions ``A_r`` of the retain batch. ``train=False`` computes it
    under ``torch.no_grad`` (its weight is 0: it is only logged).
    """

    kind: str = "nll"
    reference: torch.nn.Module | None = None
    train: bool = True

    def __call__(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict]:
        """``(L_r scalar, {"retain_nll": …, "retain_tokens": …})``."""
        with nullcontext() if self.train else torch.no_grad():
            logits, targets, mask = answer_logits(model, batch)
            nll = token_nll(logits, targets, mask)
            if self.kind == "nll":
                value = nll
            else:
                if self.reference is None:
                    raise ValueError("the KL retain term needs a reference model")
                ref = on_device_of(self.reference, batch)
                with torch.no_grad():
                    ref_logits, _, _ = answer_logits(ref, batch)
                value = kl_to_reference(logits, ref_logits, mask)
        metrics = {"retain_nll": float(nll.detach()), "retain_tokens": float(mask.sum())}
        return value, metrics


def forget_metrics(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> dict:
    """Detached ``forget_nll`` (answer NLL of the forget batch) and ``forget_tokens``."""
    with torch.no_grad():
        nll = token_nll(logits.detach(), targets, mask)
    return {"forget_nll": float(nll), "forget_tokens": float(mask.sum())}


def make_terms_result(
    objective: torch.Tensor, retain: torch.Tensor, *metric_dicts: Mapping[str, float]
) -> Terms:
    metrics: dict[str, float] = {}
    for d in metric_dicts:
        metrics.update(d)
    return Terms(objective=objective, constraints={"retain": retain}, metrics=metrics)
