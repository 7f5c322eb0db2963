"""TOFU model utility: the harmonic mean of nine numbers (specification §3.6).

    MU = K / Σ_{k=1}^{K} (1 / m_k),   K = 9,   m_k ≥ 0;   MU = 0 if any m_k = 0

The nine components (open-unlearning names, `MODEL_UTILITY_COMPONENTS`): probability,
ROUGE-L recall and ``true_better`` truth ratio on the retain set, the real-authors set and the
world-facts set (P_norm on retain, option-normalised P_opt on the other two).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["MODEL_UTILITY_COMPONENTS", "harmonic_mean", "model_utility"]

MODEL_UTILITY_COMPONENTS: tuple[str, ...] = (
    "retain_Q_A_Prob",
    "retain_Q_A_ROUGE",
    "retain_Truth_Ratio",
    "ra_Q_A_Prob_normalised",
    "ra_Q_A_ROUGE",
    "ra_Truth_Ratio",
    "wf_Q_A_Prob_normalised",
    "wf_Q_A_ROUGE",
    "wf_Truth_Ratio",
)


def harmonic_mean(values: Sequence[float] | np.ndarray) -> float:
    """``K / Σ_k 1/m_k`` of non-negative finite numbers; 0 when any of them is 0.

    Raises:
        ValueError: if ``values`` is empty or holds a negative, NaN or infinite number.
    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError("values is empty: the harmonic mean of nothing is undefined")
    for i, v in enumerate(array):
        if not np.isfinite(v) or v < 0:
            raise ValueError(
                f"values[{i}] = {v}: every component must be a finite number ≥ 0 "
                "(a NaN usually means an empty reference upstream)"
            )
    if (array == 0).any():
        return 0.0
    return float(array.size / np.sum(1.0 / array))


def model_utility(components: Mapping[str, float]) -> float:
    """Harmonic mean of the nine TOFU utility components, keyed by their OU names.

    Args:
        components: exactly the keys of `MODEL_UTILITY_COMPONENTS`.

    Raises:
        ValueError: naming missing or unexpected keys, or the first invalid value.
    """
    missing = [k for k in MODEL_UTILITY_COMPONENTS if k not in components]
    extra = [k for k in components if k not in MODEL_UTILITY_COMPONENTS]
    if missing or extra:
        raise ValueError(
            f"components must have exactly the nine keys {list(MODEL_UTILITY_COMPONENTS)}; "
            f"missing {missing}, unexpected {extra}"
        )
    for key in MODEL_UTILITY_COMPONENTS:
        value = float(components[key])
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"components[{key!r}] = {value} must be a finite number ≥ 0")
    return harmonic_mean([components[k] for k in MODEL_UTILITY_COMPONENTS])
