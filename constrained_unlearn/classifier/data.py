"""Tabular classification data and forget/retain splits.

The bundled data set is scikit-learn's ``load_digits`` (1797 8×8 images of the digits 0–9,
64 pixel features in 0..16), read from the scikit-learn installation, never downloaded. Features
are standardised with the *training* statistics, ``x' = (x − μ_train) / σ_train`` (σ = 1 where a
pixel is constant on the training set), and the train/test split is stratified and seeded.

Two unlearning scenarios, both splitting the training set ``D = D_f ∪ D_r`` (disjoint):

* **class forgetting** — ``D_f = {(x, y) ∈ D : y = c}`` for one class ``c``;
* **random forgetting** — ``D_f`` is a seeded uniform sample of ``round(ρ · |D|)`` training
  examples (ρ = 0.1 by default).

The test set is never part of ``D_f`` or ``D_r``; it is the population of unseen examples for
accuracy and the membership-inference comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

__all__ = [
    "ClassifierSplit",
    "TabularData",
    "digits_split",
    "forget_class_split",
    "forget_random_split",
    "load_digits_data",
]

Scenario = Literal["class", "random"]


@dataclass(frozen=True)
class TabularData:
    """A standardised train/test split.

    Attributes:
        x_train: ``[N, D]`` float32 standardised features.
        y_train: ``[N]`` int64 labels in ``0..num_classes−1``.
        x_test: ``[M, D]`` float32, standardised with the training statistics.
        y_test: ``[M]`` int64.
        num_classes: ``C``.
        feature_mean: ``[D]`` float32 μ_train.
        feature_std: ``[D]`` float32 σ_train (1 where a feature is constant).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])


@dataclass(frozen=True)
class ClassifierSplit:
    """A training set split into forget and retain parts, plus the held-out test set.

    Attributes:
        data: the underlying [`TabularData`][constrained_unlearn.classifier.TabularData].
        forget_index: ``[N_f]`` int64 indices into ``data.x_train`` (sorted, N_f ≥ 1).
        retain_index: ``[N_r]`` int64, the complement of ``forget_index`` (N_r ≥ 1).
        scenario: ``"class"`` or ``"random"``.
        forget_class: the forgotten class for ``"class"``, else ``None``.
    """

    data: TabularData
    forget_index: torch.Tensor
    retain_index: torch.Tensor
    scenario: Scenario
    forget_class: int | None = None

    def __post_init__(self) -> None:
        n = len(self.data.y_train)
        if self.forget_index.numel() == 0:
            raise ValueError(
                "the forget set is empty; choose a class present in the training set or a "
                "forget fraction that selects at least one example"
            )
        if self.retain_index.numel() == 0:
            raise ValueError(
                "the retain set is empty (everything is forgotten); forget a smaller part of "
                "the training set"
            )
        both = torch.cat([self.forget_index, self.retain_index])
        if both.numel() != n or torch.unique(both).numel() != n:
            raise ValueError(
                "forget_index and retain_index must partition range(len(data.y_train)) "
                "(disjoint, together covering every training example)"
            )
        if self.scenario not in ("class", "random"):
            raise ValueError(f"scenario must be 'class' or 'random', got {self.scenario!r}")
        if (self.scenario == "class") != (self.forget_class is not None):
            raise ValueError("forget_class must be given exactly when scenario == 'class'")

    # -- tensors of each part ------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def x_forget(self) -> torch.Tensor:
        """``[N_f, D]``."""
        return self.data.x_train[self.forget_index]

    @property
    def y_forget(self) -> torch.Tensor:
        """``[N_f]``."""
        return self.data.y_train[self.forget_index]

    @property
    def x_retain(self) -> torch.Tensor:
        """``[N_r, D]``."""
        return self.data.x_train[self.retain_index]

    @property
    def y_retain(self) -> torch.Tensor:
        """``[N_r]``."""
        return self.data.y_train[self.retain_index]

    @property
    def x_test(self) -> torch.Tensor:
        """``[M, D]``."""
        return self.data.x_test

    @property
    def y_test(self) -> torch.Tensor:
        """``[M]``."""
        return self.data.y_test

    @property
    def test_forget_mask(self) -> torch.Tensor:
        """``[M]`` bool: test examples drawn from the forget distribution.

        For class forgetting, the test examples of the forgotten class; for random forgetting,
        every test example (D_f is a uniform sample of the training distribution).
        """
        if self.forget_class is None:
            return torch.ones_like(self.data.y_test, dtype=torch.bool)
        return self.data.y_test == self.forget_class

    def forget_dataset(self) -> TensorDataset:
        """``TensorDataset`` of ``(x [D], y [])`` items of D_f."""
        return TensorDataset(self.x_forget, self.y_forget)

    def retain_dataset(self) -> TensorDataset:
        """``TensorDataset`` of ``(x [D], y [])`` items of D_r."""
        return TensorDataset(self.x_retain, self.y_retain)


def load_digits_data(*, test_size: float = 0.25, seed: int = 0) -> TabularData:
    """scikit-learn's bundled digits, stratified train/test split, standardised features.

    Args:
        test_size: fraction of the 1797 examples held out for testing, in (0, 1).
        seed: seed of the split.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std = np.where(std > 0, std, 1.0)

    def features(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((a - mean) / std, dtype=torch.float32)

    return TabularData(
        x_train=features(x_tr),
        y_train=torch.as_tensor(y_tr, dtype=torch.int64),
        x_test=features(x_te),
        y_test=torch.as_tensor(y_te, dtype=torch.int64),
        num_classes=int(y.max()) + 1,
        feature_mean=torch.as_tensor(mean, dtype=torch.float32),
        feature_std=torch.as_tensor(std, dtype=torch.float32),
    )


def forget_class_split(data: TabularData, forget_class: int) -> ClassifierSplit:
    """``D_f`` = every training example of class ``forget_class``; ``D_r`` = the rest."""
    if isinstance(forget_class, bool) or not isinstance(forget_class, (int, np.integer)):
        raise TypeError(f"forget_class must be an integer class id, got {forget_class!r}")
    if not 0 <= forget_class < data.num_classes:
        raise ValueError(
            f"forget_class={forget_class} is not a class id; choose one of "
            f"0..{data.num_classes - 1}"
        )
    is_forget = data.y_train == int(forget_class)
    return ClassifierSplit(
        data=data,
        forget_index=torch.nonzero(is_forget).flatten(),
        retain_index=torch.nonzero(~is_forget).flatten(),
        scenario="class",
        forget_class=int(forget_class),
    )


def forget_random_split(
    data: TabularData, fraction: float = 0.1, *, seed: int = 0
) -> ClassifierSplit:
    """``D_f`` = a seeded uniform sample of ``round(fraction · N)`` training examples."""
    n = len(data.y_train)
    if not isinstance(fraction, (int, float)) or not math.isfinite(fraction):
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    count = round(fraction * n)
    if count < 1:
        raise ValueError(
            f"fraction={fraction} of {n} training examples selects no example, so the forget "
            f"set would be empty; use fraction ≥ {0.5 / n:.2g}"
        )
    if count >= n:
        raise ValueError(
            f"fraction={fraction} forgets all {n} training examples and leaves no retain set; "
            "use a fraction < 1"
        )
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=generator)
    forget = torch.sort(perm[:count]).values
    retain = torch.sort(perm[count:]).values
    return ClassifierSplit(data=data, forget_index=forget, retain_index=retain, scenario="random")


def digits_split(
    scenario: Scenario,
    *,
    forget_class: int = 8,
    fraction: float = 0.1,
    test_size: float = 0.25,
    seed: int = 0,
) -> ClassifierSplit:
    """The digits data split for one scenario (``"class"`` or ``"random"``).

    Args:
        scenario: ``"class"`` forgets every training example of ``forget_class``;
            ``"random"`` forgets a ``fraction`` of the training examples.
        forget_class: the class to forget (class scenario).
        fraction: the forgotten fraction (random scenario).
        test_size: held-out fraction of the data set.
        seed: seed of the train/test split and of the random forget sample.
    """
    data = load_digits_data(test_size=test_size, seed=seed)
    if scenario == "class":
        return forget_class_split(data, forget_class)
    if scenario == "random":
        return forget_random_split(data, fraction, seed=seed)
    raise ValueError(f"scenario must be 'class' or 'random', got {scenario!r}")
