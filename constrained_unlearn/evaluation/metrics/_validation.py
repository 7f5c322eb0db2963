"""Argument checks shared by the metric modules (private)."""

from __future__ import annotations

from collections.abc import Sequence, Sized

import numpy as np


def finite_1d(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """``values`` as a float64 1-D array; raise if it is not 1-D or holds NaN/inf."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one number per example (1-D); got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{name}[{int(bad[0])}] = {array[bad[0]]} is not finite; "
            "remove or recompute that example before scoring"
        )
    return array


def same_length(a: Sized, b: Sized, name_a: str, name_b: str) -> None:
    """Raise if two per-example sequences differ in length."""
    if len(a) != len(b):
        raise ValueError(
            f"{name_a} has {len(a)} entries but {name_b} has {len(b)}; "
            "pass one entry per example in both, in the same order"
        )


def probability(value: float, name: str) -> float:
    """``value`` as a float in [0, 1]; raise otherwise."""
    if value is None:
        raise ValueError(f"{name} is required (there is no default value to fall back to)")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} = {value} is not in [0, 1]; pass an AUC/probability")
    return value
