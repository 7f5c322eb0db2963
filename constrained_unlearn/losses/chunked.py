"""Memory-lean forget and retain losses fused with the LM head.

The naive path materialises logits ``[N, V]`` for every position (and autograd keeps them, often
in float32, for the backward). With a 128k vocabulary that is the largest tensor of the step.
Here the LM head is applied to ``C`` positions at a time, the loss of the chunk is reduced at
once and the chunk's logits are freed; the backward recomputes each chunk's logits and applies
the analytic gradient in the logits:

    margin   ℓ(z) = m², m = max_k z_k − mean_k z_k       ∂ℓ/∂z = 2m (e_{argmax} − 1/V)
    NLL      ℓ(z) = logsumexp(z) − z_y                    ∂ℓ/∂z = softmax(z) − e_y

then ``∂/∂h = (∂ℓ/∂z) W`` and ``∂/∂W = (∂ℓ/∂z)ᵀ h`` (and ``∂/∂b = Σ ∂ℓ/∂z``). Peak extra memory
is ``O(C · V)`` instead of ``O(N · V)``; the price is one extra ``h Wᵀ`` per chunk in the
backward. Gradients are exact (equal to the naive path up to float rounding).
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["LossKind", "chunked_head_loss"]

LossKind = Literal["margin", "nll"]


def _chunk_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    logits = h @ weight.t()
    if bias is not None:
        logits = logits + bias
    # half types are upcast for the reductions; float32/float64 are kept as they are
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _chunk_loss_and_grad(
    logits: torch.Tensor, targets: torch.Tensor | None, kind: LossKind, want_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sum of per-position losses of a chunk ``[C, V]`` and (optionally) ``∂ sum / ∂ logits``."""
    v = logits.shape[-1]
    if kind == "margin":
        top, arg = logits.max(dim=-1)
        margin = top - logits.mean(dim=-1)
        loss = (margin**2).sum()
        if not want_grad:
            return loss, None
        grad = (-2.0 / v) * margin.unsqueeze(-1).expand_as(logits).clone()
        grad.scatter_add_(-1, arg.unsqueeze(-1), (2.0 * margin).unsqueeze(-1))
        return loss, grad
    assert targets is not None
    log_z = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    loss = (log_z - picked).sum()
    if not want_grad:
        return loss, None
    grad = torch.softmax(logits, dim=-1)
    grad.scatter_add_(-1, targets.unsqueeze(-1), -torch.ones_like(picked).unsqueeze(-1))
    return loss, grad


class _ChunkedHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, kind, chunk_size):  # type: ignore[override]
        acc_dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        total = hidden.new_zeros((), dtype=acc_dtype)
        with torch.no_grad():
            for start in range(0, hidden.shape[0], chunk_size):
                h = hidden[start : start + chunk_size]
                t = None if targets is None else targets[start : start + chunk_size]
                loss, _ = _chunk_loss_and_grad(_chunk_logits(h, weight, bias), t, kind, False)
                total += loss
        ctx.save_for_backward(hidden, weight, bias, targets)
        ctx.kind = kind
        ctx.chunk_size = chunk_size
        return total / hidden.shape[0]

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        hidden, weight, bias, targets = ctx.saved_tensors
        n = hidden.shape[0]
        acc_dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        scale = grad_output.to(acc_dtype) / n
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight, dtype=acc_dtype) if ctx.needs_input_grad[1] else None
        grad_bias = (
            torch.zeros_like(bias, dtype=acc_dtype)
            if bias is not None and ctx.needs_input_grad[2]
            else None
        )
        for start in range(0, n, ctx.chunk_size):
            h = hidden[start : start + ctx.chunk_size]
            t = None if targets is None else targets[start : start + ctx.chunk_size]
            _, g = _chunk_loss_and_grad(_chunk_logits(h, weight, bias), t, ctx.kind, True)
            g = g.to(acc_dtype) * scale
            if grad_hidden is not None:
                grad_hidden[start : start + ctx.chunk_size] = (g.to(weight.dtype) @ weight).to(
                    hidden.dtype
                )
            if grad_weight is not None:
                grad_weight += g.t() @ h.to(acc_dtype)
            if grad_bias is not None:
                grad_bias += g.sum(dim=0)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        if grad_bias is not None:
            grad_bias = grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None


def chunked_head_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    *,
    kind: LossKind,
    targets: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Mean margin² or NLL over positions, computed through the LM head in chunks.

    Args:
        hidden: ``[N, H]`` final hidden states of the supervised positions only (select them
            first: ``hidden[mask]``).
        weight: ``[V, H]`` LM-head (output embedding) weight.
        kind: ``"margin"`` — mean of ``(max_k z_k − mean_k z_k)²``; ``"nll"`` — mean of
            ``−log softmax(z)[y]`` (needs ``targets``).
        targets: ``[N]`` token ids for ``"nll"``.
        bias: ``[V]`` LM-head bias, if the model has one.
        chunk_size: positions per chunk ``C``.

    Returns:
        A float32 scalar equal to ``margin_flattening_loss(hidden @ weight.T + bias)`` (or
        ``token_nll``), with exact gradients for ``hidden``, ``weight`` and ``bias``.
    """
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"expected hidden [N, H] and weight [V, H]; got {tuple(hidden.shape)} and "
            f"{tuple(weight.shape)}"
        )
    if hidden.shape[0] == 0:
        raise ValueError("no supervised position: select at least one position of hidden")
    if kind not in ("margin", "nll"):
        raise ValueError(f"kind must be 'margin' or 'nll', got {kind!r}")
    if kind == "nll" and (targets is None or targets.shape != hidden.shape[:1]):
        raise ValueError("kind='nll' needs targets of shape [N]")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer ≥ 1, got {chunk_size!r}")
    return _ChunkedHeadLoss.apply(hidden, weight, bias, targets, kind, chunk_size)
