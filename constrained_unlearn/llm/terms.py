"""Unlearning terms of a causal LM: the ONE ``terms_fn`` every LM method runs through.

A method is data over this module: a `ForgetObjective` (a function of the aligned
outputs of the forget batch, possibly with a frozen reference model's outputs), a
`RetainTerm` (NLL, KL to the reference, …) and a few flags (does it need the reference,
the hidden states, can it be computed in chunks). [`CausalLMTerms`][constrained_unlearn.llm.CausalLMTerms] runs the forwards
(separate or fused, full logits or chunked through the LM head), hands each function what it
needs and returns [`Terms`][constrained_unlearn.engine.Terms] whose metrics are tensors
(the engine sums them on the device and syncs once per step).

Batches are dicts from [`pad_collate`][constrained_unlearn.llm.pad_collate] (right padding):
``input_ids`` ``[B, T]``, ``attention_mask`` ``[B, T]`` (from lengths), ``labels`` ``[B, T]``
(``-100`` on prompt and padding).

Every loss is taken on the positions that **predict** answer tokens: the logits at ``t`` are
paired with the label at ``t + 1`` ([`next_token_alignment`][constrained_unlearn.losses.next_token_alignment]),
so the position that predicts the first answer token (the last prompt token) counts and the
position after EOS does not (DESIGN.md, invariant 5). With ``A`` the set of such aligned
positions in a batch, the built-in pieces are

    "margin"    L_f = (1/|A_f|) Σ_{p∈A_f} (max_k z_{p,k} − mean_k z_{p,k})²
    "entropy"   L_f = (1/|A_f|) Σ_{p∈A_f} KL(softmax(z_p) ‖ uniform)
    NLL retain  L_r = −(1/|A_r|) Σ_{p∈A_r} log p_θ(y_p | prefix)
    KL retain   L_r = (1/|A_r|) Σ_{p∈A_r} Σ_k p_θ(k|p) (log p_θ(k|p) − log p_ref(k|p))

Chunked mode (``chunk_size=C``) never materialises the ``[N, V]`` logits: the LM head is
applied ``C`` positions at a time (`chunked_head_loss`).
It is exact or refused: on every batch the model's own logits at the last position (the head
hook lets the model finish its forward on that position) are compared with ``h W^T + b``; a
model that changes its logits after the head (soft-capping, logit scales, multipliers …) is
refused, as is an LM head with trainable parameters the chunked path does not read (a LoRA
adapter on the head would get no gradient).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from constrained_unlearn.engine.terms import Terms
from constrained_unlearn.llm.head import answer_hidden, head_inputs
from constrained_unlearn.losses import (
    kl_to_reference,
    kl_to_uniform_loss,
    margin_flattening_loss,
    next_token_alignment,
    sequence_log_prob,
    token_log_probs,
    token_nll,
)
from constrained_unlearn.losses.chunked import chunked_head_loss
from constrained_unlearn.losses.masking import IGNORE_INDEX

__all__ = [
    "ENTROPY_OBJECTIVE",
    "KL_RETAIN",
    "MARGIN_OBJECTIVE",
    "NLL_RETAIN",
    "Batch",
    "CausalLMTerms",
    "ForgetObjective",
    "LMView",
    "RetainTerm",
    "answer_logits",
    "check_batch",
    "concat_batches",
    "head_inputs",
    "kl_to_reference",
    "logit_objective",
    "sequence_log_probs",
]

Batch = Mapping[str, torch.Tensor]
_ROWS_FIX = "use answer_rows=None (the full logits for such a model)"
ChunkKind = Literal["margin", "nll"]


def check_batch(batch: Batch, name: str) -> None:
    """Raise a clear error unless ``batch`` is a right-padded [`pad_collate`][constrained_unlearn.llm.pad_collate] dict."""
    for key in ("input_ids", "attention_mask", "labels"):
        if key not in batch:
            raise KeyError(
                f"{name} has no {key!r} (keys: {sorted(batch)}); build batches with pad_collate"
            )
    mask = batch["attention_mask"]
    if mask.shape[1] > 1 and bool((mask[:, 1:] > mask[:, :-1]).any()):
        raise ValueError(
            f"{name} is not right-padded (attention_mask has a 0 before a 1); teacher-forced "
            "terms need pad_collate(..., side='right')"
        )


# -- what a method's functions see ---------------------------------------------------------------
@dataclass
class LMView:
    """One batch through one model, aligned with the tokens the positions predict.

    Attributes:
        logits: ``[B, T-1, V]`` aligned logits (``None`` in chunked mode).
        targets: ``[B, T-1]`` target ids (0 where masked).
        mask: ``[B, T-1]`` bool, the aligned answer positions ``A``.
        hidden_states: the model's ``output_hidden_states`` (each ``[B, T, H]``, unaligned),
            only when the objective or retain term asked for them.
    """

    logits: torch.Tensor | None
    targets: torch.Tensor
    mask: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    _log_probs: torch.Tensor | None = field(default=None, repr=False)

    def require_logits(self) -> torch.Tensor:
        if self.logits is None:
            raise ValueError("this term needs the full logits; use chunk_size=None")
        return self.logits

    def nll(self) -> torch.Tensor:
        """Mean answer NLL ``−(1/|A|) Σ_{p∈A} log p(y_p)`` (float32 scalar)."""
        return token_nll(self.require_logits(), self.targets, self.mask)

    def token_log_probs(self) -> torch.Tensor:
        """``log p(y_p)`` at every aligned position, ``[B, T-1]`` float32 (cached)."""
        if self._log_probs is None:
            self._log_probs = token_log_probs(self.require_logits(), self.targets)
        return self._log_probs

    def sequence_log_prob(self, normalize: bool = False) -> torch.Tensor:
        """Per-row answer log-probability ``s_b = Σ_{p∈A_b} log p(y_p)`` ``[B]`` (``normalize``:
        divided by ``|A_b|``)."""
        return sequence_log_prob(
            self.require_logits(), self.targets, self.mask, normalize=normalize
        )

    def rows(self, start: int, stop: int) -> LMView:
        """The view of rows ``start:stop``."""
        states = None
        if self.hidden_states is not None:
            states = tuple(h[start:stop] for h in self.hidden_states)
        return LMView(
            None if self.logits is None else self.logits[start:stop],
            self.targets[start:stop],
            self.mask[start:stop],
            states,
        )


ForgetLoss = Callable[[LMView, "LMView | None"], "torch.Tensor | tuple[torch.Tensor, Mapping]"]


@dataclass(frozen=True)
class ForgetObjective:
    """A method's forget objective, as data.

    Attributes:
        name: short name (error messages, logs).
        loss: ``loss(view, reference_view) -> L_f`` or ``(L_f, {metric: tensor})``; ``view``
            is the forget batch (after ``prepare``) under θ, ``reference_view`` the same under
            θ_ref (``None`` unless ``needs_reference``).
        needs_reference: whether ``loss`` reads the reference model's outputs.
        hidden_states: whether ``loss`` reads ``view.hidden_states``.
        prepare: ``prepare(forget_batch) -> batch`` the objective scores instead (e.g. the
            original answers stacked with preferred ones); its first ``B`` rows must be the
            forget batch's (``forget_nll`` is logged on them).
        chunk_kind: how the chunked path computes it: ``"margin"`` (mean squared margin) or
            ``"nll"`` (mean NLL), times ``chunk_sign``; ``None`` if it cannot be chunked.
        chunk_sign: ``±1``.
        needs: what it needs, for the error when chunking is refused.
    """

    name: str
    loss: ForgetLoss
    needs_reference: bool = False
    hidden_states: bool = False
    prepare: Callable[[Batch], Batch] | None = None
    chunk_kind: ChunkKind | None = None
    chunk_sign: float = 1.0
    needs: str = "the full logits"


@dataclass(frozen=True)
class RetainTerm:
    """A method's retain quantity ``L_r`` (the constrained or weighted term), as data.

    Attributes:
        name: ``"nll"``, ``"kl"``, ….
        loss: ``loss(view, reference_view) -> L_r`` on the retain batch.
        needs_reference: whether it reads the reference model's outputs.
        hidden_states: whether it reads ``view.hidden_states``.
        is_divergence: whether it is a distance to θ_ref (0 at θ₀: ε cannot be calibrated).
        chunk_kind: ``"nll"`` if the chunked path can compute it, else ``None``.
    """

    name: str
    loss: Callable[[LMView, LMView | None], torch.Tensor]
    needs_reference: bool = False
    hidden_states: bool = False
    is_divergence: bool = False
    chunk_kind: ChunkKind | None = None


def _retain_nll(view: LMView, reference: LMView | None) -> torch.Tensor:
    return view.nll()


def _retain_kl(view: LMView, reference: LMView | None) -> torch.Tensor:
    assert reference is not None and reference.logits is not None
    return kl_to_reference(view.require_logits(), reference.logits, view.mask)


NLL_RETAIN = RetainTerm("nll", _retain_nll, chunk_kind="nll")
"""``L_r`` = retain answer NLL."""
KL_RETAIN = RetainTerm("kl", _retain_kl, needs_reference=True, is_divergence=True)
"""``L_r`` = mean ``KL(p_θ ‖ p_ref)`` on the retain answer positions."""


@dataclass(frozen=True)
class _PositionLoss:
    """``loss(view) = fn(aligned logits, mask)`` (picklable)."""

    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def __call__(self, view: LMView, reference: LMView | None) -> torch.Tensor:
        return self.fn(view.require_logits(), view.mask)


def logit_objective(
    name: str,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    chunk_kind: ChunkKind | None = None,
) -> ForgetObjective:
    """A forget objective that is a function ``fn(logits [B, T-1, V], mask) -> scalar`` of the
    forget batch's aligned logits alone (PDU's margin, the entropy ablation)."""
    return ForgetObjective(name, _PositionLoss(fn), chunk_kind=chunk_kind)


MARGIN_OBJECTIVE = logit_objective("margin", margin_flattening_loss, chunk_kind="margin")
"""PDU's forget objective: the mean squared logit margin (chunkable, position-local)."""
ENTROPY_OBJECTIVE = logit_objective("entropy", kl_to_uniform_loss)
"""The entropy ablation's forget objective: mean ``KL(softmax(z) ‖ uniform)``."""

_NAMED_OBJECTIVES: dict[str, ForgetObjective] = {
    "margin": MARGIN_OBJECTIVE,
    "entropy": ENTROPY_OBJECTIVE,
}


# -- forwards ------------------------------------------------------------------------------------
def _forward(
    model: torch.nn.Module, batch: Batch, hidden_states: bool = False
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """``([B, T, V] logits, hidden states or None)`` of one forward pass, no KV cache."""
    kwargs: dict[str, Any] = {"output_hidden_states": True} if hidden_states else {}
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        use_cache=False,
        **kwargs,
    )
    states = None
    if hidden_states:
        states = out.hidden_states
        if states is None:
            raise ValueError(
                f"{type(model).__name__} returned no hidden_states for output_hidden_states=True"
            )
        states = tuple(states)
    return out.logits, states


def _pad_right(t: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return F.pad(t, (0, width - t.shape[1]), value=value)


def concat_batches(first: Batch, second: Batch, pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Stack two right-padded batches along the batch axis, right-padding to a common width.

    ``input_ids`` are padded with ``pad_token_id`` (its value is irrelevant: masked),
    ``attention_mask`` with 0 and ``labels`` with ``-100``. Returns ``[B1 + B2, max(T1, T2)]``.
    """
    width = max(first["input_ids"].shape[1], second["input_ids"].shape[1])
    fill = {"input_ids": pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
    return {
        key: torch.cat([_pad_right(first[key], width, v), _pad_right(second[key], width, v)])
        for key, v in fill.items()
    }


def answer_logits(
    model: torch.nn.Module, batch: Batch
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``model`` on ``batch`` and align its logits with the answer tokens.

    Returns:
        ``(logits [B, T-1, V], targets [B, T-1], mask [B, T-1] bool)`` as in
        [`next_token_alignment`][constrained_unlearn.losses.next_token_alignment].
    """
    check_batch(batch, "batch")
    return next_token_alignment(_forward(model, batch)[0], batch["labels"])


def sequence_log_probs(
    model: torch.nn.Module, batch: Batch, *, normalize: bool = False
) -> torch.Tensor:
    """Per-example answer log-probability ``log π(y_b | x_b)`` (differentiable).

        s_b = Σ_{p ∈ A_b} log p_θ(y_p | prefix)          (``normalize``: divided by |A_b|)

    Shape ``[B]`` float32.
    """
    logits, targets, mask = answer_logits(model, batch)
    return sequence_log_prob(logits, targets, mask, normalize=normalize)


def _prepare_reference(reference: torch.nn.Module, batch: Batch) -> torch.nn.Module:
    """Eval mode, and on the batch's device (the engine moves the trained model with
    accelerate; the reference is not prepared)."""
    device = batch["input_ids"].device
    first = next(reference.parameters(), None)
    if first is not None and first.device != device:
        reference.to(device)
    if reference.training:
        reference.eval()
    return reference


def _split(
    logits: torch.Tensor,
    states: tuple[torch.Tensor, ...] | None,
    n_first: int,
    widths: tuple[int, int],
) -> tuple[tuple[torch.Tensor, Any], tuple[torch.Tensor, Any]]:
    """Undo [`concat_batches`][constrained_unlearn.llm.concat_batches] on a forward's outputs."""
    w1, w2 = widths
    first = (
        logits[:n_first, :w1],
        None if states is None else tuple(h[:n_first, :w1] for h in states),
    )
    second = (
        logits[n_first:, :w2],
        None if states is None else tuple(h[n_first:, :w2] for h in states),
    )
    return first, second


def _view(logits: torch.Tensor, states: Any, labels: torch.Tensor) -> LMView:
    aligned, targets, mask = next_token_alignment(logits, labels)
    return LMView(aligned, targets, mask, states)


class CausalLMTerms:
    """``terms_fn(model, forget_batch, retain_batch) -> Terms`` for a causal LM.

    Args:
        forget_loss: a `ForgetObjective`, or ``"margin"`` (PDU's logit-margin
            flattening) / ``"entropy"`` (KL to the uniform distribution).
        retain: the `RetainTerm` (default `NLL_RETAIN`).
        reference_model: the frozen θ_ref, required when the objective or retain term needs it.
            Put in eval mode with ``requires_grad=False``, always run under ``torch.no_grad``.
        kl_constraint: add the constraint ``"kl_reference"`` = ``KL(p_θ ‖ p_ref)`` on the retain
            answer positions. Default (``None``): when a reference is given that neither the
            objective nor the retain term uses.
        fused: run forget and retain batches as ONE forward on their right-padded
            concatenation, then split (also for the reference). Same values as two forwards
            (right padding leaves the real positions' positions and attention unchanged), one
            pass through the body instead of two (0.57 × the step time with the answer rows
            on the 58M benchmark model, docs/benchmarks.md); the default. ``False``: two
            forwards (no padding of the shorter batch to the longer one's width).
        pad_token_id: id used to widen ``input_ids`` in fused mode (masked, so any valid id).
        chunk_size: compute the losses in chunks of ``C`` positions fused with the LM head
            (see the module docstring); only for objectives and retain terms with a
            ``chunk_kind``, otherwise refused with a message naming ``label``.
        log_forget_nll: log ``forget_nll`` in chunked mode (one more chunked pass, no graph).
        train_retain: whether ``L_r`` needs a graph. ``False`` only when its weight is frozen
            at 0: it is then computed under ``torch.no_grad`` (logged only).
        answer_rows: apply the LM head only to the ``N`` aligned answer positions
            (``z = h_A Wᵀ + b``, ``[N, V]`` instead of ``[B, T-1, V]``; ordinary autograd, no
            recomputation). Same values as the full logits, fewer FLOPs and less memory when
            prompts and padding are long. Only for position-local terms (those with a
            ``chunk_kind``: margin, ±NLL) without a reference. ``None`` (default): on when the
            terms allow it, and off for good, silently, when the model changes its logits
            after the head (checked on the first batch, as for chunking); ``True``: refuse a
            model or term it cannot serve; ``False``: off.
        label: who is asking, for error messages (e.g. ``"method 'npo'"``).

    Returns from ``__call__``:
        [`Terms`][constrained_unlearn.engine.Terms] with ``objective`` = L_f,
        ``constraints = {"retain": L_r[, "kl_reference": K]}`` and detached tensor
        ``metrics``: ``forget_nll`` (answer NLL of the forget batch, rises as it is
        forgotten), ``retain_nll``, ``forget_tokens``, ``retain_tokens`` and the objective's.
    """

    def __init__(
        self,
        *,
        forget_loss: ForgetObjective | str = "margin",
        retain: RetainTerm = NLL_RETAIN,
        reference_model: torch.nn.Module | None = None,
        kl_constraint: bool | None = None,
        fused: bool = True,
        pad_token_id: int = 0,
        chunk_size: int | None = None,
        log_forget_nll: bool = True,
        train_retain: bool = True,
        answer_rows: bool | None = None,
        label: str = "CausalLMTerms",
    ) -> None:
        if isinstance(forget_loss, str):
            if forget_loss not in _NAMED_OBJECTIVES:
                raise ValueError(
                    f"forget_loss must be 'margin', 'entropy' or a ForgetObjective, got "
                    f"{forget_loss!r}"
                )
            forget_loss = _NAMED_OBJECTIVES[forget_loss]
        if not isinstance(forget_loss, ForgetObjective):
            raise TypeError(f"forget_loss must be a ForgetObjective, got {type(forget_loss)}")
        self.objective = forget_loss
        self.retain = retain
        uses_reference = forget_loss.needs_reference or retain.needs_reference
        if kl_constraint is None:
            kl_constraint = reference_model is not None and not uses_reference
        if (uses_reference or kl_constraint) and reference_model is None:
            raise ValueError(
                f"{label}: the {forget_loss.name!r} objective / {retain.name!r} retain term "
                "needs a frozen reference model; pass reference_model= (freeze_reference(model))"
            )
        self.kl_constraint = bool(kl_constraint)
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"chunk_size must be None or an integer ≥ 1, got {chunk_size!r}")
        if chunk_size is not None:
            self._check_chunkable(label, chunk_size)
        self.chunk_size = chunk_size
        self.fused = bool(fused)
        self.pad_token_id = int(pad_token_id)
        self.log_forget_nll = log_forget_nll
        self.train_retain = train_retain
        self.reference_model = reference_model
        if reference_model is not None:
            reference_model.eval()
            reference_model.requires_grad_(False)
        rows_possible = chunk_size is None and self._position_local()
        if answer_rows and not rows_possible:
            raise ValueError(
                f"{label}: answer_rows=True needs position-local terms without a reference and "
                f"chunk_size=None; the {forget_loss.name!r} objective / {retain.name!r} retain "
                "term do not allow it. Use answer_rows=None"
            )
        self.answer_rows = rows_possible and answer_rows is not False
        self._strict_rows = bool(answer_rows)
        self._head_checked: set[int] = set()  # id() of models whose head passed the check

    def _position_local(self) -> bool:
        """Whether L_f and L_r are means over answer positions of a function of that position's
        logits alone (what the chunked and answer-rows paths compute)."""
        o, r = self.objective, self.retain
        return (
            o.chunk_kind is not None
            and not (o.hidden_states or o.prepare or o.needs_reference)
            and r.chunk_kind is not None
            and not (r.hidden_states or r.needs_reference)
            and not self.kl_constraint
        )

    def _check_chunkable(self, label: str, chunk_size: int) -> None:
        objective, retain = self.objective, self.retain
        reason = None
        if objective.chunk_kind is None or objective.hidden_states or objective.prepare:
            reason = f"its forget objective {objective.name!r} needs {objective.needs}"
        elif objective.needs_reference:
            reason = f"its forget objective {objective.name!r} needs the reference model's logits"
        elif retain.chunk_kind is None:
            reason = f"its retain term {retain.name!r} needs the full logits"
        elif self.kl_constraint:
            reason = "the kl_reference constraint needs the full logits"
        if reason:
            raise ValueError(
                f"{label} cannot compute its losses in chunks (chunk_size={chunk_size}): "
                f"{reason}. Use chunk_size=None (training.loss_chunk_size: null)"
            )

    # -- the terms ---------------------------------------------------------------------------
    def __call__(self, model: torch.nn.Module, forget_batch: Batch, retain_batch: Batch) -> Terms:
        check_batch(forget_batch, "forget_batch")
        check_batch(retain_batch, "retain_batch")
        if self.chunk_size is not None:
            return self._chunked(model, forget_batch, retain_batch)
        n_forget = forget_batch["input_ids"].shape[0]
        scored = forget_batch
        if self.objective.prepare is not None:
            scored = self.objective.prepare(forget_batch)
        views = self._answer_row_views(model, forget_batch, retain_batch)
        if views is None:
            views = self._views(model, scored, retain_batch, reference=False)
        f_view, r_view = views
        f_ref, r_ref = self._reference_views(scored, retain_batch)

        objective, extra = self._objective(f_view, f_ref)
        if self.train_retain:
            retain = self.retain.loss(r_view, r_ref)
        else:
            with torch.no_grad():
                retain = self.retain.loss(r_view, r_ref).detach()
        constraints = {"retain": retain}
        if self.kl_constraint:
            assert r_ref is not None and r_ref.logits is not None
            constraints["kl_reference"] = kl_to_reference(
                r_view.require_logits(), r_ref.logits, r_view.mask
            )
        forget_rows = f_view.rows(0, n_forget)
        with torch.no_grad():
            metrics: dict[str, Any] = {
                "forget_nll": token_nll(
                    forget_rows.require_logits().detach(), forget_rows.targets, forget_rows.mask
                ),
                "retain_nll": retain.detach()
                if self.retain is NLL_RETAIN
                else token_nll(r_view.require_logits().detach(), r_view.targets, r_view.mask),
                "forget_tokens": forget_rows.mask.sum(),
                "retain_tokens": r_view.mask.sum(),
            }
        metrics.update(extra)
        return Terms(objective=objective, constraints=constraints, metrics=metrics)

    def _objective(self, view: LMView, reference: LMView | None) -> tuple[torch.Tensor, dict]:
        out = self.objective.loss(view, reference)
        if isinstance(out, tuple):
            value, extra = out
            return value, {
                k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in extra.items()
            }
        return out, {}

    def _views(
        self, model: torch.nn.Module, forget: Batch, retain: Batch, *, reference: bool
    ) -> tuple[LMView, LMView]:
        """Views of both batches under ``model`` (θ, or θ_ref when ``reference``)."""
        f_states, r_states = self.objective.hidden_states, self.retain.hidden_states
        frozen_retain = not (self.train_retain or reference)
        if self.fused:
            both = concat_batches(forget, retain, self.pad_token_id)
            logits, states = _forward(model, both, f_states or r_states)
            (fl, fs), (rl, rs) = _split(
                logits,
                states,
                forget["input_ids"].shape[0],
                (forget["input_ids"].shape[1], retain["input_ids"].shape[1]),
            )
            if frozen_retain:
                rl = rl.detach()
                rs = None if rs is None else tuple(h.detach() for h in rs)
            return _view(fl, fs, forget["labels"]), _view(rl, rs, retain["labels"])
        fl, fs = _forward(model, forget, f_states)
        with torch.no_grad() if frozen_retain else nullcontext():
            rl, rs = _forward(model, retain, r_states)
        return _view(fl, fs, forget["labels"]), _view(rl, rs, retain["labels"])

    def _answer_row_views(
        self, model: torch.nn.Module, forget: Batch, retain: Batch
    ) -> tuple[LMView, LMView] | None:
        """Packed views ``[1, N, V]`` of the answer rows only, or ``None`` when off.

        ``h [B, T, H]`` → ``h_A [N, H]`` (positions predicting answer tokens) → ``h_A Wᵀ + b``.
        Every term here is a mean over positions, so packing the ``N`` rows into one row of
        an all-true mask gives the values of the full ``[B, T-1, V]`` view.
        """
        if not self.answer_rows:
            return None
        key = id(model)
        check = key not in self._head_checked
        try:
            if self.fused:
                both = concat_batches(forget, retain, self.pad_token_id)
                hidden, weight, bias = head_inputs(model, both, check=check, fix=_ROWS_FIX)
                n = forget["input_ids"].shape[0]
                f_hidden = hidden[:n, : forget["input_ids"].shape[1]]
                r_hidden = hidden[n:, : retain["input_ids"].shape[1]]
            else:
                f_hidden, weight, bias = head_inputs(model, forget, check=check, fix=_ROWS_FIX)
                with nullcontext() if self.train_retain else torch.no_grad():
                    r_hidden, _, _ = head_inputs(model, retain, check=False, fix=_ROWS_FIX)
        except ValueError:
            if self._strict_rows:
                raise
            self.answer_rows = False  # e.g. logit soft-capping: the full logits from now on
            return None
        self._head_checked.add(key)

        def packed(hidden: torch.Tensor, labels: torch.Tensor, frozen: bool) -> LMView:
            h, targets, _ = answer_hidden(hidden, labels)
            with torch.no_grad() if frozen else nullcontext():
                logits = F.linear(h, weight, bias)
            logits = logits.detach() if frozen else logits
            mask = torch.ones(1, h.shape[0], dtype=torch.bool, device=h.device)
            return LMView(logits.unsqueeze(0), targets.unsqueeze(0), mask)

        return packed(f_hidden, forget["labels"], False), packed(
            r_hidden, retain["labels"], not self.train_retain
        )

    @torch.no_grad()
    def _reference_views(self, forget: Batch, retain: Batch) -> tuple[LMView | None, LMView | None]:
        ref = self.reference_model
        want_f = self.objective.needs_reference
        want_r = self.retain.needs_reference or self.kl_constraint
        if ref is None or not (want_f or want_r):
            return None, None
        ref = _prepare_reference(ref, forget)
        if want_f and want_r and self.fused:
            return self._views(ref, forget, retain, reference=True)
        f_view = r_view = None
        if want_f:
            f_view = _view(*_forward(ref, forget, self.objective.hidden_states), forget["labels"])
        if want_r:
            r_view = _view(*_forward(ref, retain, self.retain.hidden_states), retain["labels"])
        return f_view, r_view

    def _chunked(self, model: torch.nn.Module, forget_batch: Batch, retain_batch: Batch) -> Terms:
        """The same terms through `chunked_head_loss`."""
        if self.fused:
            both = concat_batches(forget_batch, retain_batch, self.pad_token_id)
            hidden, weight, bias = head_inputs(model, both)
            n_forget = forget_batch["input_ids"].shape[0]
            f_hidden = hidden[:n_forget, : forget_batch["input_ids"].shape[1]]
            r_hidden = hidden[n_forget:, : retain_batch["input_ids"].shape[1]]
        else:
            f_hidden, weight, bias = head_inputs(model, forget_batch)
            with nullcontext() if self.train_retain else torch.no_grad():
                r_hidden, _, _ = head_inputs(model, retain_batch)
        f_h, f_t, _ = answer_hidden(f_hidden, forget_batch["labels"])
        r_h, r_t, _ = answer_hidden(r_hidden, retain_batch["labels"])
        size = self.chunk_size or 1024
        kind = self.objective.chunk_kind
        assert kind is not None
        objective = self.objective.chunk_sign * chunked_head_loss(
            f_h,
            weight,
            kind=kind,
            targets=f_t if kind == "nll" else None,
            bias=bias,
            chunk_size=size,
        )
        with nullcontext() if self.train_retain else torch.no_grad():
            retain = chunked_head_loss(
                r_h, weight, kind="nll", targets=r_t, bias=bias, chunk_size=size
            )
        metrics: dict[str, Any] = {
            "forget_tokens": float(f_h.shape[0]),
            "retain_tokens": float(r_h.shape[0]),
            "retain_nll": retain.detach(),
        }
        if self.log_forget_nll:
            with torch.no_grad():
                metrics["forget_nll"] = chunked_head_loss(
                    f_h.detach(),
                    weight.detach(),
                    kind="nll",
                    targets=f_t,
                    bias=None if bias is None else bias.detach(),
                    chunk_size=size,
                )
        return Terms(objective=objective, constraints={"retain": retain}, metrics=metrics)
