"""Membership-inference attack scores and their AUC (specification §3.9).

Every score s(x) is oriented **higher = less likely a member** (members: the forget set,
non-members: the holdout set). Per example, with answer-token log-probs log p(y_t):

    LOSS       s = ℓ̄ = −(1/T) Σ_t log p(y_t)                              all T tokens (EOS incl.)
    ZLib       s = ℓ̄ / |zlib(text.encode("utf-8"))|                       bytes of compressed text
    Min-K%     s = −(1/K) Σ_{t ∈ B_K} log p(y_t),   K = max(1, ⌊k·T'⌋),  B_K = K lowest log p
    Min-K%++   same on z_t = (log p(y_t) − μ_t) / σ_t                      (TokenStats.mu / sigma)
    Reference  s = ℓ̄_θ(x) − ℓ̄_ref(x)                                      ref: e.g. retain model
    GradNorm   s = (1/|P|) Σ_{W ∈ P} ‖∇_W ℓ̄'(x)‖_p,  p ∈ {1, 2, ∞}         P: tensors with a grad

Min-K%, Min-K%++ and GradNorm use T' = T − 1 tokens (no EOS): pass
``token_statistics(...).drop_last()``. k = 0.4 is the value every TOFU/MUSE config uses (the
open-unlearning class default is 0.2). ⌊k·T'⌋ is Python's ``int(k * T')``, as in
open-unlearning (e.g. k = 0.4, T' = 5 → K = 2).

AUC with forget = label 0 and holdout = label 1 (the value ``sklearn.metrics.roc_auc_score``
gives), computed as the Mann–Whitney statistic with average ranks r over the pooled scores:

    AUC = Pr[s_holdout > s_forget] + ½ Pr[s_holdout = s_forget]
        = (Σ_{holdout} r − n_h (n_h + 1) / 2) / (n_f · n_h)

→ 1 when the forget set is memorised, ≈ 0.5 for a model that never saw it.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from constrained_unlearn.evaluation.metrics._validation import finite_1d, same_length
from constrained_unlearn.evaluation.metrics.token_stats import mean_nll

__all__ = [
    "DEFAULT_K",
    "gradnorm_scores",
    "loss_scores",
    "mia_auc",
    "min_k_plus_plus_scores",
    "min_k_scores",
    "reference_scores",
    "roc_auc",
    "zlib_scores",
]

DEFAULT_K = 0.4


def loss_scores(log_probs: Sequence[torch.Tensor]) -> np.ndarray:
    """LOSS attack: ``ℓ̄`` per example, ``[B]`` float64 (raises on an example with no token)."""
    return mean_nll(list(log_probs))


def zlib_scores(log_probs: Sequence[torch.Tensor], texts: Sequence[str]) -> np.ndarray:
    """ZLib attack: ``ℓ̄ / len(zlib.compress(text.encode("utf-8")))`` per example.

    Args:
        log_probs: per-example answer-token log-probs (EOS included).
        texts: the decoded answer text of each example (special tokens skipped).
    """
    same_length(log_probs, texts, "log_probs", "texts")
    nll = mean_nll(list(log_probs))
    sizes = np.array([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=np.float64)
    return nll / sizes


def _num_lowest(length: int, k: float) -> int:
    return max(1, int(length * k))


def _check_k(k: float) -> None:
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k = {k} must be a fraction in (0, 1] (TOFU/MUSE configs use 0.4)")


def min_k_scores(log_probs: Sequence[torch.Tensor], k: float = DEFAULT_K) -> np.ndarray:
    """Min-K% attack: minus the mean of the K = max(1, ⌊k·T'⌋) lowest token log-probs.

    Args:
        log_probs: per-example log-probs over T' tokens (EOS dropped).
        k: fraction of tokens kept.

    Raises:
        ValueError: on k outside (0, 1] or an example with no token (naming its index).
    """
    _check_k(k)
    out = np.empty(len(log_probs), dtype=np.float64)
    for i, lp in enumerate(log_probs):
        values = _tokens(lp, i, "log_probs")
        lowest = np.sort(values)[: _num_lowest(values.size, k)]
        out[i] = -lowest.mean()
    return out


def min_k_plus_plus_scores(
    log_probs: Sequence[torch.Tensor],
    mu: Sequence[torch.Tensor],
    sigma: Sequence[torch.Tensor],
    k: float = DEFAULT_K,
) -> np.ndarray:
    """Min-K%++ attack: Min-K% on the standardised log-probs ``z_t = (log p(y_t) − μ_t) / σ_t``.

    Args:
        log_probs: per-example ``[T'_b]`` log p(y_t) from ``TokenStats.drop_last()``.
        mu: per-example ``[T'_b]`` means μ_t of log p under p_t.
        sigma: per-example ``[T'_b]`` standard deviations σ_t.
        k: fraction of tokens kept.
    """
    _check_k(k)
    same_length(log_probs, mu, "log_probs", "mu")
    same_length(log_probs, sigma, "log_probs", "sigma")
    out = np.empty(len(log_probs), dtype=np.float64)
    for i, (lp, m, s) in enumerate(zip(log_probs, mu, sigma)):
        values = _tokens(lp, i, "log_probs")
        m_np, s_np = _tokens(m, i, "mu"), _tokens(s, i, "sigma")
        if not values.shape == m_np.shape == s_np.shape:
            raise ValueError(
                f"example {i}: log_probs, mu and sigma have lengths {values.size}, {m_np.size}, "
                f"{s_np.size}; they must come from the same TokenStats"
            )
        z = (values - m_np) / s_np
        out[i] = -np.sort(z)[: _num_lowest(z.size, k)].mean()
    return out


def reference_scores(
    target_nll: Sequence[float] | np.ndarray, reference_nll: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Reference attack: ``ℓ̄_θ(x) − ℓ̄_ref(x)`` per example (both mean NLLs, EOS included)."""
    target = finite_1d(target_nll, "target_nll")
    reference = finite_1d(reference_nll, "reference_nll")
    same_length(target, reference, "target_nll", "reference_nll")
    return target - reference


def _tokens(values: torch.Tensor, index: int, name: str) -> np.ndarray:
    array = values.detach().cpu().double().numpy()
    if array.ndim != 1:
        raise ValueError(f"{name}[{index}] must be 1-D; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(
            f"{name}[{index}] has no token: example {index} cannot be scored "
            "(its answer is empty or was truncated away)"
        )
    return array


def gradnorm_scores(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module], torch.Tensor],
    *,
    p: float = 2.0,
) -> np.ndarray:
    """GradNorm attack: mean over parameter tensors of ``‖∇_W ℓ̄'(x)‖_p``, one per example.

    ``loss_fn(model)`` runs the model and returns the per-example losses ℓ̄'(x): a 1-D tensor
    ``[B]`` (or a 0-d tensor for a single example), each the mean NLL over T' answer tokens,
    still attached to the graph. One backward pass per example (the graph is kept between them).

    Side effects, all undone: the model is put in ``train()`` mode (as open-unlearning does;
    dropout, if any, is active) and its ``.grad`` fields are cleared before each backward.
    Afterwards the previous train/eval mode is restored and the gradients are cleared
    (``zero_grad(set_to_none=True)``). Gradients accumulated before the call are discarded,
    with a warning: never call this inside a training step.

    Args:
        model: the evaluated model; only parameters with ``requires_grad`` are considered.
        loss_fn: see above.
        p: 1, 2 or ``math.inf``.

    Returns:
        ``[B]`` float64 scores (higher = less likely a member).
    """
    if p not in (1, 2, math.inf):
        raise ValueError(f"p = {p} is not supported; use 1, 2 or math.inf")
    params = [w for w in model.parameters() if w.requires_grad]
    if not params:
        raise ValueError("model has no parameter with requires_grad=True; GradNorm needs one")
    if any(w.grad is not None and bool(w.grad.detach().abs().sum() > 0) for w in params):
        warnings.warn(
            "gradnorm_scores discards the gradients already accumulated in the model",
            RuntimeWarning,
            stacklevel=2,
        )
    was_training = model.training
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        with torch.enable_grad():
            losses = loss_fn(model)
            if not isinstance(losses, torch.Tensor) or losses.dim() > 1:
                raise ValueError(
                    "loss_fn must return a 0-d or 1-D tensor of per-example losses; got "
                    f"{type(losses).__name__} {getattr(losses, 'shape', '')}"
                )
            if not losses.requires_grad:
                raise ValueError(
                    "loss_fn returned losses without a graph; do not wrap it in torch.no_grad()"
                )
            flat = losses.reshape(-1)
            scores = np.empty(flat.numel(), dtype=np.float64)
            for i in range(flat.numel()):
                model.zero_grad(set_to_none=True)
                flat[i].backward(retain_graph=i + 1 < flat.numel())
                norms = [
                    torch.linalg.vector_norm(w.grad.detach().double(), ord=p)
                    for w in params
                    if w.grad is not None
                ]
                if not norms:
                    raise ValueError(f"example {i}'s loss does not depend on any parameter")
                scores[i] = float(torch.stack(norms).mean())
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return scores


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` with ties given their average rank (``rankdata``'s
    ``"average"`` method), ``[N]`` float64."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    # start index of each run of equal values in sorted order
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.concatenate([starts[1:], [values.size]])
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(
    labels: Sequence[int] | np.ndarray | Sequence[bool], scores: Sequence[float] | np.ndarray
) -> float:
    """Area under the ROC curve of ``scores`` for the binary ``labels`` (1 = positive).

    The Mann–Whitney form, exact with ties (a tie counts one half), the number
    ``sklearn.metrics.roc_auc_score(labels, scores)`` gives::

        AUC = Pr[s_pos > s_neg] + ½ Pr[s_pos = s_neg]
            = (Σ_{i ∈ pos} r_i − n_pos (n_pos + 1) / 2) / (n_pos · n_neg)

    with ``r`` the average ranks of all scores pooled. This is the library's one AUC (the
    TOFU/MUSE MIAs and the classifier MIA use it).

    Args:
        labels: ``[N]`` 0/1 (or bool) class of each score.
        scores: ``[N]`` finite scores, higher = more likely positive.

    Raises:
        ValueError: on lengths that differ, labels other than 0/1, a non-finite score, or a
            class with no example.
    """
    y = np.asarray(labels)
    s = finite_1d(scores, "scores")
    if y.ndim != 1 or y.size != s.size:
        raise ValueError(f"labels has shape {y.shape} but scores has {s.size} entries")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1; got {sorted(set(y.tolist()))[:5]}")
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"AUC needs both classes; got {n_pos} positive and {n_neg} negative examples"
        )
    ranks = _average_ranks(s)
    u_pos = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_pos / (n_pos * n_neg))


def mia_auc(
    forget_scores: Sequence[float] | np.ndarray, holdout_scores: Sequence[float] | np.ndarray
) -> float:
    """ROC AUC with forget = label 0, holdout = label 1 (higher score = less likely a member):
    [`roc_auc`][constrained_unlearn.evaluation.metrics.roc_auc] of the pooled scores.

    Raises:
        ValueError: if either side is empty or holds a non-finite score.
    """
    forget = finite_1d(forget_scores, "forget_scores")
    holdout = finite_1d(holdout_scores, "holdout_scores")
    if forget.size == 0 or holdout.size == 0:
        raise ValueError(
            f"AUC needs both classes; got {forget.size} forget and {holdout.size} holdout scores"
        )
    labels = np.concatenate([np.zeros(forget.size, np.int64), np.ones(holdout.size, np.int64)])
    return roc_auc(labels, np.concatenate([forget, holdout]))
