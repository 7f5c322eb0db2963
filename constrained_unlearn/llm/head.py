"""The LM head's inputs without the ``[B, T, V]`` logits: what the answer-rows and chunked paths use.

[`head_inputs`][constrained_unlearn.llm.head.head_inputs] runs the model with a pre-hook on its
output embedding that keeps the final hidden states ``h [B, T, H]`` and lets the head (and
whatever the model does after it) run on the last position only; the model's own logits there
are compared with ``h W^T + b``, so a model that changes its logits after the head
(soft-capping, logit scales …) is refused instead of scored wrongly. Training terms
(`constrained_unlearn.llm.terms`) and evaluation scoring both build on it; it imports no engine.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from constrained_unlearn.losses.masking import IGNORE_INDEX

__all__ = ["CHUNKED_FIX", "answer_hidden", "head_inputs"]

CHUNKED_FIX = "use chunk_size=None (training.loss_chunk_size: null)"
"""The remedy named when the chunked losses cannot use `head_inputs`."""


def _architecture(model: torch.nn.Module) -> str:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return f"{type(model).__name__}" + (f" (model_type {model_type!r})" if model_type else "")


def _exactness_tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance of ``h W^T + b`` against the model's own logits, by dtype."""
    if dtype == torch.bfloat16:
        return 2e-2
    if dtype == torch.float16:
        return 4e-3
    if torch.backends.cuda.matmul.allow_tf32:
        return 5e-3
    return 1e-5


def head_inputs(
    model: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
    *,
    check: bool = True,
    fix: str = CHUNKED_FIX,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Final hidden states ``[B, T, H]`` and the LM head's ``(weight [V, H], bias)``, checked.

    The forward still goes through ``model`` (so DDP and accelerate wrappers see it), but a
    pre-hook on the output embedding captures its input and lets the head (and whatever the
    model does after it) run on the last position only: the ``[B, T, V]`` logits are never
    computed. The model's own logits at that position are then compared with
    ``h_last W^T + b``, what the chunked losses compute; they must agree to float tolerance
    (``1e-5`` relative to the largest logit in float32, looser in half precision).
    ``check=False`` skips that comparison (and its host sync) for a model already checked.
    ``fix``: the remedy the errors name (the caller's way around this path).

    Raises:
        ValueError: naming the architecture and ``chunk_size=None`` when the model has no
            usable output embedding, the head has trainable parameters besides ``weight`` and
            ``bias`` (e.g. a LoRA adapter on the head), or the model changes the logits after
            the head (soft-capping, logit scaling, multipliers …).
    """
    from accelerate.utils import extract_model_from_parallel

    inner = extract_model_from_parallel(model)
    arch = _architecture(inner)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if head is None or not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(f"LM head inputs: {arch} exposes no linear output embedding; {fix}")
    bias = getattr(head, "bias", None)
    bias = bias if isinstance(bias, torch.Tensor) else None
    unread = [
        n
        for n, p in head.named_parameters()
        if p.requires_grad and p is not weight and p is not bias
    ]
    if unread:
        raise ValueError(
            f"LM head inputs: the LM head of {arch} has trainable parameters the head-fused "
            f"paths do not use ({', '.join(unread[:3])}{' …' if len(unread) > 3 else ''}; e.g. a "
            f"LoRA adapter on the head): they would get no gradient. {fix[0].upper()}{fix[1:]}, "
            "or leave the LM head out of the adapter's target modules"
        )
    captured: dict[str, torch.Tensor] = {}

    def keep_input(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            captured["hidden"] = args[0]
            return (args[0][:, -1:, :], *args[1:]), kwargs
        if not kwargs:
            return args, kwargs  # nothing to capture: refused below
        key = next(iter(kwargs))
        captured["hidden"] = kwargs[key]
        return args, {**kwargs, key: kwargs[key][:, -1:, :]}

    handle = head.register_forward_pre_hook(keep_input, with_kwargs=True)
    try:
        out = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
        )
    finally:
        handle.remove()
    hidden = captured.get("hidden")
    if hidden is None or hidden.shape[:2] != batch["input_ids"].shape:
        raise ValueError(f"LM head inputs: could not capture the LM head's input of {arch}; {fix}")
    own = getattr(out, "logits", None)
    if own is None or own.dim() != 3 or own.shape[1] != 1 or own.shape[-1] != weight.shape[0]:
        raise ValueError(
            f"LM head inputs: {arch} did not return [B, 1, V] logits for the last position; {fix}"
        )
    if not check:
        return hidden, weight, bias
    with torch.no_grad():
        mine = F.linear(
            hidden[:, -1].detach(), weight.detach(), None if bias is None else bias.detach()
        ).float()
        theirs = own[:, -1].detach().float()
        scale = float(theirs.abs().max().clamp_min(1e-6))
        error = float((mine - theirs).abs().max()) / scale
    if not error <= _exactness_tolerance(weight.dtype):
        raise ValueError(
            f"h·W^T + b is not exact for {arch}: the model changes its logits after the "
            f"LM head (soft-capping, logit scale or multiplier …): its own logits and "
            f"h·W^T + b differ by {error:.3g} relative to the largest logit. {fix[0].upper()}"
            f"{fix[1:]} for this model"
        )
    return hidden, weight, bias


def answer_hidden(
    hidden: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The rows of ``hidden [B, T, H]`` that predict answer tokens, example after example.

    Position ``t`` predicts token ``t + 1``, so row ``(b, t)`` is kept when
    ``labels[b, t + 1] != IGNORE_INDEX``. Returns ``(h [N, H], targets [N], sizes)`` with ``sizes[b]``
    the number of rows of example ``b``.
    """
    mask = labels[:, 1:] != IGNORE_INDEX
    return hidden[:, :-1][mask], labels[:, 1:][mask], mask.sum(dim=1).tolist()
