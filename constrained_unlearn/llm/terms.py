"""Unlearning terms of a causal LM: the engine's ``terms_fn`` for Hugging Face models.

Batches are dicts from :func:`~constrained_unlearn.llm.collate.pad_collate` (right padding):
``input_ids`` ``[B, T]``, ``attention_mask`` ``[B, T]`` (from lengths), ``labels`` ``[B, T]``
(``-100`` on prompt and padding).

Every loss is taken on the positions that **predict** answer tokens: the logits at ``t`` are
paired with the label at ``t + 1`` (:func:`~constrained_unlearn.losses.next_token_alignment`),
so the position that predicts the first answer token (the last prompt token) counts and the
position after EOS does not (DESIGN.md, invariant 5). With ``A`` the set of such aligned
positions in a batch:

    objective   L_f = (1/|A_f|) Σ_{p∈A_f} (max_k z_{p,k} − mean_k z_{p,k})²         ("margin")
             or L_f = (1/|A_f|) Σ_{p∈A_f} KL(softmax(z_p) ‖ uniform)               ("entropy")
    "retain"    L_r = −(1/|A_r|) Σ_{p∈A_r} log p_θ(y_p | prefix)
    "kl_reference" (optional)
                K   = (1/|A_r|) Σ_{p∈A_r} Σ_k p_θ(k|p) (log p_θ(k|p) − log p_ref(k|p))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F

from constrained_unlearn.engine.terms import Terms
from constrained_unlearn.losses import (
    kl_to_uniform_loss,
    margin_flattening_loss,
    masked_mean,
    next_token_alignment,
    sequence_log_prob,
    token_nll,
)
from constrained_unlearn.losses.chunked import chunked_head_loss
from constrained_unlearn.losses.masking import IGNORE_INDEX

Batch = Mapping[str, torch.Tensor]


def check_batch(batch: Batch, name: str) -> None:
    """Raise a clear error unless ``batch`` is a right-padded :func:`pad_collate` dict."""
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


def _forward_logits(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """``[B, T, V]`` logits of one forward pass, no KV cache."""
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        use_cache=False,
    )
    return out.logits


def head_inputs(
    model: torch.nn.Module, batch: Batch
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Final hidden states ``[B, T, H]`` and the LM head's ``(weight [V, H], bias)``.

    The forward still goes through ``model`` (so DDP and accelerate wrappers see it), but a
    pre-hook on the output embedding captures its input and lets the head run on the last
    position only: the ``[B, T, V]`` logits are never computed. Models that transform the
    logits after the head (Gemma-2's soft-capping) are refused.
    """
    from accelerate.utils import extract_model_from_parallel

    inner = extract_model_from_parallel(model)
    if getattr(getattr(inner, "config", None), "final_logit_softcapping", None):
        raise ValueError(
            "chunked losses skip the model's logit soft-capping; use chunk_size=None for this model"
        )
    head = inner.get_output_embeddings()
    if head is None or not hasattr(head, "weight"):
        raise ValueError("the model exposes no output embedding; use chunk_size=None")
    captured: dict[str, torch.Tensor] = {}

    def keep_input(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        captured["hidden"] = args[0]
        return (args[0][:, -1:, :],)

    handle = head.register_forward_pre_hook(keep_input)
    try:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    finally:
        handle.remove()
    if "hidden" not in captured or captured["hidden"].shape[:2] != batch["input_ids"].shape:
        raise ValueError("could not capture the LM head's input; use chunk_size=None")
    return captured["hidden"], head.weight, getattr(head, "bias", None)


def _aligned_hidden(
    hidden: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states ``[N, H]`` of the positions that predict answer tokens, and the targets."""
    mask = labels[:, 1:] != IGNORE_INDEX
    return hidden[:, :-1][mask], labels[:, 1:][mask]


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
        :func:`~constrained_unlearn.losses.next_token_alignment`.
    """
    check_batch(batch, "batch")
    return next_token_alignment(_forward_logits(model, batch), batch["labels"])


def sequence_log_probs(
    model: torch.nn.Module, batch: Batch, *, normalize: bool = False
) -> torch.Tensor:
    """Per-example answer log-probability ``log π(y_b | x_b)`` (differentiable).

        s_b = Σ_{p ∈ A_b} log p_θ(y_p | prefix)          (``normalize``: divided by |A_b|)

    Shape ``[B]`` float32; feeds :func:`~constrained_unlearn.losses.npo_loss` (unnormalised)
    and :func:`~constrained_unlearn.losses.simnpo_loss` (``normalize=True``).
    """
    logits, targets, mask = answer_logits(model, batch)
    return sequence_log_prob(logits, targets, mask, normalize=normalize)


@torch.no_grad()
def reference_sequence_log_probs(
    reference_model: torch.nn.Module, batch: Batch, *, normalize: bool = False
) -> torch.Tensor:
    """:func:`sequence_log_probs` under a frozen reference model: no graph, eval mode.

    The model's train/eval mode is restored afterwards.
    """
    was_training = reference_model.training
    reference_model.eval()
    try:
        return sequence_log_probs(reference_model, batch, normalize=normalize)
    finally:
        reference_model.train(was_training)


def kl_to_reference(
    logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean forward KL ``KL(p_θ ‖ p_ref)`` over masked positions.

    Args:
        logits: ``[B, T, V]`` model logits (aligned).
        ref_logits: ``[B, T, V]`` reference logits on the same positions (no gradient).
        mask: ``[B, T]`` bool.

    Returns:
        Float32 scalar ``(1/|M|) Σ_{p∈M} Σ_k p_k (log p_k − log q_k)``, ≥ 0.
    """
    if ref_logits.shape != logits.shape:
        raise ValueError(
            f"reference logits {tuple(ref_logits.shape)} do not match model logits "
            f"{tuple(logits.shape)}: the reference must share the tokenizer/vocabulary"
        )
    log_p = torch.log_softmax(logits.float(), dim=-1)
    log_q = torch.log_softmax(ref_logits.float(), dim=-1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
    return masked_mean(per_position, mask)


class CausalLMTerms:
    """``terms_fn(model, forget_batch, retain_batch) -> Terms`` for a causal LM.

    Args:
        forget_loss: ``"margin"`` (PDU's logit-margin flattening) or ``"entropy"`` (KL to the
            uniform distribution, the ablation).
        reference_model: optional frozen model; adds the constraint ``"kl_reference"`` =
            ``KL(p_θ ‖ p_ref)`` on the retain answer positions. It is put in eval mode with
            ``requires_grad=False`` and always run under ``torch.no_grad``.
        fused: run forget and retain batches as ONE forward on their right-padded
            concatenation, then split. Same values as two forwards (right padding leaves the
            real positions' positions and attention unchanged), fewer kernel launches.
        pad_token_id: id used to widen ``input_ids`` in fused mode (masked, so any valid id).

    Returns from ``__call__``:
        :class:`~constrained_unlearn.engine.terms.Terms` with ``objective`` = L_f,
        ``constraints = {"retain": L_r[, "kl_reference": K]}`` and detached ``metrics``:
        ``forget_nll`` (answer NLL on the forget batch, rises as it is forgotten),
        ``forget_tokens`` and ``retain_tokens`` (counts of aligned answer positions).
    """

    def __init__(
        self,
        *,
        forget_loss: Literal["margin", "entropy"] = "margin",
        reference_model: torch.nn.Module | None = None,
        fused: bool = False,
        pad_token_id: int = 0,
        chunk_size: int | None = None,
        log_forget_nll: bool = True,
    ) -> None:
        if forget_loss not in ("margin", "entropy"):
            raise ValueError(f"forget_loss must be 'margin' or 'entropy', got {forget_loss!r}")
        self.forget_loss = forget_loss
        self.fused = fused
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be None or an integer ≥ 1, got {chunk_size!r}")
        if chunk_size is not None and forget_loss != "margin":
            raise ValueError("chunk_size is implemented for forget_loss='margin' only")
        if chunk_size is not None and reference_model is not None:
            raise ValueError(
                "chunk_size cannot be combined with a reference model (KL needs logits)"
            )
        self.chunk_size = chunk_size
        self.log_forget_nll = log_forget_nll
        self.pad_token_id = int(pad_token_id)
        self.reference_model = reference_model
        if reference_model is not None:
            reference_model.eval()
            reference_model.requires_grad_(False)

    def _objective(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.forget_loss == "margin":
            return margin_flattening_loss(logits, mask)
        return kl_to_uniform_loss(logits, mask)

    def __call__(self, model: torch.nn.Module, forget_batch: Batch, retain_batch: Batch) -> Terms:
        check_batch(forget_batch, "forget_batch")
        check_batch(retain_batch, "retain_batch")
        if self.chunk_size is not None:
            return self._chunked(model, forget_batch, retain_batch)
        if self.fused:
            both = concat_batches(forget_batch, retain_batch, self.pad_token_id)
            logits = _forward_logits(model, both)
            n_forget = forget_batch["input_ids"].shape[0]
            f_width, r_width = (
                forget_batch["input_ids"].shape[1],
                retain_batch["input_ids"].shape[1],
            )
            f_logits = logits[:n_forget, :f_width]
            r_logits = logits[n_forget:, :r_width]
        else:
            f_logits = _forward_logits(model, forget_batch)
            r_logits = _forward_logits(model, retain_batch)

        f_logits, f_targets, f_mask = next_token_alignment(f_logits, forget_batch["labels"])
        r_logits, r_targets, r_mask = next_token_alignment(r_logits, retain_batch["labels"])

        objective = self._objective(f_logits, f_mask)
        constraints = {"retain": token_nll(r_logits, r_targets, r_mask)}
        if self.reference_model is not None:
            ref = self.reference_model
            if ref.training:
                ref.eval()
            with torch.no_grad():
                ref_logits = _forward_logits(ref, retain_batch)[:, :-1]
            constraints["kl_reference"] = kl_to_reference(r_logits, ref_logits, r_mask)

        with torch.no_grad():
            forget_nll = token_nll(f_logits.detach(), f_targets, f_mask)
        metrics = {  # tensors: the engine syncs them once per step, not per micro-batch
            "forget_nll": forget_nll,
            "forget_tokens": f_mask.sum(),
            "retain_tokens": r_mask.sum(),
        }
        return Terms(objective=objective, constraints=constraints, metrics=metrics)

    def _chunked(self, model: torch.nn.Module, forget_batch: Batch, retain_batch: Batch) -> Terms:
        """Same terms through :func:`~constrained_unlearn.losses.chunked.chunked_head_loss`."""
        if self.fused:
            both = concat_batches(forget_batch, retain_batch, self.pad_token_id)
            hidden, weight, bias = head_inputs(model, both)
            n_forget = forget_batch["input_ids"].shape[0]
            f_hidden = hidden[:n_forget, : forget_batch["input_ids"].shape[1]]
            r_hidden = hidden[n_forget:, : retain_batch["input_ids"].shape[1]]
        else:
            f_hidden, weight, bias = head_inputs(model, forget_batch)
            r_hidden, _, _ = head_inputs(model, retain_batch)
        f_h, f_t = _aligned_hidden(f_hidden, forget_batch["labels"])
        r_h, r_t = _aligned_hidden(r_hidden, retain_batch["labels"])
        size = self.chunk_size or 1024
        objective = chunked_head_loss(f_h, weight, kind="margin", bias=bias, chunk_size=size)
        retain = chunked_head_loss(r_h, weight, kind="nll", targets=r_t, bias=bias, chunk_size=size)
        metrics: dict[str, float | torch.Tensor] = {
            "forget_tokens": float(f_h.shape[0]),
            "retain_tokens": float(r_h.shape[0]),
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
