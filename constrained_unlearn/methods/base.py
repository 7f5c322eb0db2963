"""What every unlearning method shares: a preset over the one engine and the one LM terms.

A method is data:

(a) its **forget objective** ([`Method.forget_objective`][constrained_unlearn.methods.Method.forget_objective], a
    `ForgetObjective`: a function of the forget batch's
    aligned logits / log-probabilities / hidden states, possibly with a frozen reference model's)
    and its **retain term** ([`Method.retain_term`][constrained_unlearn.methods.Method.retain_term]: NLL, KL to θ_ref, …). Both run through
    [`CausalLMTerms`][constrained_unlearn.llm.CausalLMTerms], whatever the method: the LM options
    (``fused``, ``chunk_size``, ``pad_token_id``) apply to every method alike, and an objective
    that cannot be chunked is refused by name;
(b) its **default solver treatment**: scalarised baselines run with the ``penalty`` solver, whose
    multiplier is frozen at the method's weight, so that the engine minimises

        L_f(θ) + λ₀ · (L_r(θ) − ε)        (same gradient as L_f + λ₀ L_r: ε only shifts logs)

    while PDU runs a primal-dual solver (``gda``) that moves λ;
(c) whether it needs a **frozen reference model** θ_ref (NPO, IdkDPO, RMU, UNDIAL, AltPO,
    GradDiff with a KL retain term). The reference is only built when the loss uses it; it is
    kept in eval mode with ``requires_grad=False`` and only ever run under ``torch.no_grad``.

Because every method is "an objective plus a named retain constraint", any method runs with a
constraint ``L_r ≤ ε`` instead of a fixed weight: pass ``solver="gda"`` (or any other primal-dual
solver) and the weight becomes the initial multiplier λ₀.

Batches are the right-padded dicts of [`pad_collate`][constrained_unlearn.llm.pad_collate]
(``input_ids``, ``attention_mask`` and ``labels`` ``[B, T]``, ``-100`` on prompt and padding).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from constrained_unlearn.engine.terms import TermsFn
from constrained_unlearn.llm.terms import NLL_RETAIN, CausalLMTerms, ForgetObjective, RetainTerm
from constrained_unlearn.problem import ConstraintSpec
from constrained_unlearn.solvers import normalize_solver_name

Batch = Mapping[str, torch.Tensor]

__all__ = [
    "LM_OPTIONS",
    "NOMINAL_EPSILON",
    "Batch",
    "Method",
    "MethodSetup",
    "check_number",
    "freeze_reference",
    "resolve_lm_options",
]

NOMINAL_EPSILON = 1e-3
"""ε given to the ``penalty`` solver when ``L_r`` is 0 at θ₀ (its gradient ignores ε)."""

LM_OPTIONS = ("fused", "chunk_size", "pad_token_id")
"""The keys of ``lm_options`` (see [`Method.setup`][constrained_unlearn.methods.Method.setup])."""


def freeze_reference(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy θ_ref of ``model``: deep copy, eval mode, ``requires_grad=False``."""
    reference = copy.deepcopy(model)
    reference.eval()
    reference.requires_grad_(False)
    return reference


def check_number(name: str, value: Any, *, minimum: float | None = None, strict=False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number (≥ / > minimum)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        sign = ">" if strict else "≥"
        raise ValueError(f"{name} must be {sign} {minimum}, got {value}")


def resolve_lm_options(lm_options: Mapping[str, Any] | None, tokenizer: Any | None) -> dict:
    """``{"fused": bool, "chunk_size": int | None, "pad_token_id": int}`` with defaults
    (``False``, ``None``, the tokenizer's pad id, else its EOS id, else 0), validated."""
    options = dict(lm_options or {})
    unknown = sorted(set(options) - set(LM_OPTIONS))
    if unknown:
        raise ValueError(f"unknown lm_options {unknown}; the options are {list(LM_OPTIONS)}")
    fused = options.get("fused", True)
    if not isinstance(fused, bool):
        raise ValueError(f"lm_options['fused'] must be true or false, got {fused!r}")
    chunk = options.get("chunk_size")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"lm_options['chunk_size'] must be None or an integer ≥ 1, got {chunk!r}")
    pad = options.get("pad_token_id")
    if pad is None and tokenizer is not None:
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None)
    pad = 0 if pad is None else pad
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"lm_options['pad_token_id'] must be an integer ≥ 0, got {pad!r}")
    return {"fused": fused, "chunk_size": chunk, "pad_token_id": int(pad)}


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
        """Keyword arguments for [`UnlearningEngine`][constrained_unlearn.engine.UnlearningEngine]:

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
    """Base class of the unlearning methods: declarative fields plus two data builders.

    Subclasses set the class variables, add their options as dataclass fields and define
    [`forget_objective`][constrained_unlearn.methods.Method.forget_objective] (and [`retain_term`][constrained_unlearn.methods.Method.retain_term] if not the retain NLL). Nothing else:
    terms, reference handling, LM options and solver treatment are shared.

    Class variables:
        name: canonical registry name; paper: citation; default_solver: ``"penalty"`` for
        scalarised baselines; uses_reference: whether the forget objective reads θ_ref.

    Attributes:
        retain_weight: the weight λ of the retain term. With the ``penalty`` solver it is the
            fixed multiplier; with a primal-dual solver it is λ₀, the starting multiplier.
        dual_lr: the dual step size η when the method runs with a primal-dual solver (the
            augmented Lagrangian's dual step; ``penalty`` ignores it).
    """

    name: ClassVar[str] = "base"
    paper: ClassVar[str] = ""
    default_solver: ClassVar[str] = "penalty"
    uses_reference: ClassVar[bool] = False

    retain_weight: float = 1.0
    dual_lr: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the options; errors name the option and the fix."""
        check_number("retain_weight", self.retain_weight, minimum=0.0)
        check_number("dual_lr", self.dual_lr, minimum=0.0)

    # -- what the method declares ---------------------------------------------------------
    def forget_objective(self, tokenizer: Any | None = None) -> ForgetObjective:
        """The forget objective ``L_f`` (``tokenizer``: for methods that build new answers)."""
        raise NotImplementedError(f"{type(self).__name__} defines no forget objective")

    def retain_term(self) -> RetainTerm:
        """The retain quantity ``L_r`` (default: the retain answer NLL)."""
        return NLL_RETAIN

    @property
    def needs_reference(self) -> bool:
        """Whether the loss uses a frozen reference model θ_ref."""
        return self.uses_reference or self.retain_term().needs_reference

    @property
    def retain_is_divergence(self) -> bool:
        """Whether ``L_r`` measures a distance to θ_ref (KL, hidden-state MSE): it is then 0 at
        θ₀, and ε cannot be calibrated as ``(1 + α) L_r(θ₀)``."""
        return self.retain_term().is_divergence

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
        lm_options: Mapping[str, Any] | None = None,
    ) -> TermsFn:
        """The terms function of this method: [`CausalLMTerms`][constrained_unlearn.llm.CausalLMTerms] over its objective.

        Args:
            tokenizer: needed only by methods that build new sequences (IdkDPO, AltPO).
            reference_model: the frozen θ_ref, required iff `needs_reference`.
            train_retain: whether the retain term needs a graph. ``False`` only when its
                weight is frozen at 0 (e.g. GradAscent with the penalty solver): it is then
                computed under ``torch.no_grad`` for the logs only.
            lm_options: ``{"fused", "chunk_size", "pad_token_id"}`` (see [`setup`][constrained_unlearn.methods.Method.setup]).
        """
        options = resolve_lm_options(lm_options, tokenizer)
        if self.needs_reference and reference_model is None:
            raise ValueError(
                f"method {self.name!r} needs a frozen reference model; build one with "
                "Method.setup(model) or freeze_reference(model)"
            )
        return CausalLMTerms(
            forget_loss=self.forget_objective(tokenizer),
            retain=self.retain_term(),
            reference_model=reference_model if self.needs_reference else None,
            kl_constraint=False,
            train_retain=train_retain,
            label=f"method {self.name!r}",
            **options,
        )

    # -- solver treatment -----------------------------------------------------------------
    def solver_settings(self, solver: str | None = None, **overrides: Any) -> tuple[str, dict]:
        """``(solver name, solver kwargs)`` for this method.

        The method's weight is the multiplier: fixed under ``penalty``, the starting value λ₀
        under a primal-dual solver; ``dual_lr`` is its dual step (every solver accepts it,
        ``penalty`` ignores it). ``overrides`` win.
        """
        name = normalize_solver_name(solver or self.default_solver)
        kwargs: dict[str, Any] = {
            "multiplier_init": float(self.retain_weight),
            "dual_lr": float(self.dual_lr),
        }
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
        lm_options: Mapping[str, Any] | None = None,
        **solver_overrides: Any,
    ) -> MethodSetup:
        """Terms, solver and constraint for one run of this method on ``model``.

        Args:
            model: the model to unlearn (its frozen copy becomes θ_ref when needed).
            tokenizer: the model's tokenizer (required by IdkDPO and AltPO).
            solver: solver name; default `default_solver`.
            epsilon: ε of the retain constraint; ``None`` calibrates ``(1 + slack) L_r(θ₀)``.
                When ``L_r`` is a divergence to θ_ref (zero at θ₀) there is nothing to calibrate:
                the ``penalty`` solver then gets the nominal [`NOMINAL_EPSILON`][constrained_unlearn.methods.NOMINAL_EPSILON] (ε only
                shifts the logged violation, not the gradient) and a primal-dual solver
                requires an explicit ``epsilon``.
            slack: α of the calibration.
            reference_model: an explicit frozen reference (e.g. loaded from disk) instead of a
                copy of ``model``; only for methods that use one.
            lm_options: ``{"fused": bool, "chunk_size": int | None, "pad_token_id": int}`` for
                every method: one forward for forget + retain, chunked LM-head-fused losses
                (refused, naming the method, where its objective cannot be chunked), the pad id
                of widened batches (default: the tokenizer's).
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
            tokenizer=tokenizer,
            reference_model=reference_model,
            train_retain=train_retain,
            lm_options=lm_options,
        )
        constraints = [ConstraintSpec("retain", bound=epsilon, slack=slack)]
        return MethodSetup(self, terms_fn, name, kwargs, constraints, reference_model)


def _is_zero(value: Any) -> bool:
    if isinstance(value, Mapping):
        return all(float(v) == 0.0 for v in value.values())
    return value is not None and float(value) == 0.0
