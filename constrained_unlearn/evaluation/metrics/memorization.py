"""Teacher-forced memorisation: extraction strength and exact memorisation (spec §3.7, §3.8).

Input per example: ``correct_t = 1[ŷ_t = y_t]`` for the answer tokens *without* the final EOS,
t = 0..T'−1 (``token_statistics(...).drop_last().correct``).

Extraction strength (Carlini et al. 2021, as used by Wang et al. 2025):

    k* = min{k ∈ {0..T'} : ŷ_t = y_t for all t ≥ k}        (k* = T' when the last token misses)
    ES = 1 − k*/T'

i.e. one minus the fraction of prefix the model needs before it reproduces the rest of the
answer. ES = 1 when every token is predicted, 0 when the last one is missed.

``ou_compat=True`` reproduces open-unlearning's loop, which tries k = 0..T'−1 and, finding no
matching suffix, leaves k = T'−1: it reports 1/T' instead of 0 when the last token is missed
(the same value as "only the last token matches"). An example with no answer token scores 0
under both settings.

Exact memorisation (Tirumala et al. 2022):

    EM = (1/T') Σ_t correct_t

An example with no token has no EM: NaN with a ``RuntimeWarning`` naming it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["exact_memorization", "extraction_strength"]


def _as_bool_1d(correct: torch.Tensor | Sequence[bool], index: int) -> np.ndarray:
    array = np.asarray(correct.cpu() if isinstance(correct, torch.Tensor) else correct)
    if array.ndim != 1:
        raise ValueError(
            f"correct[{index}] must be a 1-D per-token hit vector; got shape {array.shape}"
        )
    if array.size and array.dtype != np.bool_:
        raise ValueError(
            f"correct[{index}] must be booleans (argmax == target); got dtype {array.dtype}"
        )
    return array.astype(bool)


def extraction_strength(
    correct: Sequence[torch.Tensor | Sequence[bool]], *, ou_compat: bool = False
) -> np.ndarray:
    """Extraction strength of each example (see the module docstring).

    Args:
        correct: one 1-D bool vector ``[T'_b]`` per example (EOS position already dropped).
        ou_compat: reproduce open-unlearning's 1/T' floor when the last token is missed.

    Returns:
        ``[B]`` float64 in [0, 1].
    """
    out = np.empty(len(correct), dtype=np.float64)
    for i, hits in enumerate(correct):
        h = _as_bool_1d(hits, i)
        length = h.size
        if length == 0:
            out[i] = 0.0
            continue
        misses = np.flatnonzero(~h)
        k_star = 0 if misses.size == 0 else int(misses[-1]) + 1  # first index of the hit suffix
        if ou_compat:
            k_star = min(k_star, length - 1)
        out[i] = 1.0 - k_star / length
    return out


def exact_memorization(correct: Sequence[torch.Tensor | Sequence[bool]]) -> np.ndarray:
    """Fraction of answer tokens the greedy prediction gets right, per example.

    Args:
        correct: one 1-D bool vector ``[T'_b]`` per example (EOS position already dropped).

    Returns:
        ``[B]`` float64 in [0, 1]; NaN (with a warning) for an example with no token.
    """
    out = np.empty(len(correct), dtype=np.float64)
    empty: list[int] = []
    for i, hits in enumerate(correct):
        h = _as_bool_1d(hits, i)
        if h.size == 0:
            empty.append(i)
            out[i] = np.nan
        else:
            out[i] = h.mean()
    if empty:
        warnings.warn(
            f"exact memorisation is undefined for examples with no answer token "
            f"(indices {empty[:10]}); they are NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    return out
