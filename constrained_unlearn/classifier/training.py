"""Plain supervised training: the original model and the retrained-from-scratch gold standard.

Minimises the mean cross-entropy ``(1/N) Σ_i −log softmax(f_θ(x_i))[y_i]`` with Adam
(decoupled weight decay optional) on seeded mini-batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from constrained_unlearn.classifier.data import ClassifierSplit
from constrained_unlearn.classifier.model import make_mlp

__all__ = ["train_classifier", "train_original", "train_retrained"]


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 40,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` in place on ``(x [N, D], y [N])``; returns the mean loss of each epoch.

    Args:
        model: maps ``[B, D]`` to logits ``[B, C]``.
        x: ``[N, D]`` float features.
        y: ``[N]`` int64 labels.
        epochs: passes over the data, ≥ 1.
        lr: Adam learning rate, > 0.
        batch_size: examples per step, ≥ 1.
        weight_decay: AdamW's decoupled weight decay, ≥ 0.
        seed: seed of the mini-batch order.
    """
    if x.dim() != 2 or y.dim() != 1 or len(x) != len(y):
        raise ValueError(
            f"x must be [N, D] and y [N] with the same N, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if len(y) == 0:
        raise ValueError("cannot train on an empty data set (x and y have no rows)")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be ≥ 1, got {epochs} and {batch_size}")
    if not lr > 0 or weight_decay < 0:
        raise ValueError(f"need lr > 0 and weight_decay ≥ 0, got {lr} and {weight_decay}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(y))
    model.eval()
    return losses


def train_original(
    split: ClassifierSplit, *, hidden: tuple[int, ...] = (128,), seed: int = 0, **train_kwargs
) -> nn.Sequential:
    """The model to unlearn: an MLP trained on the whole training set ``D_f ∪ D_r``."""
    data = split.data
    model = make_mlp(data.num_features, data.num_classes, hidden, seed=seed)
    train_classifier(model, data.x_train, data.y_train, seed=seed, **train_kwargs)
    return model


def train_retrained(
    split: ClassifierSplit, *, hidden: tuple[int, ...] = (128,), seed: int = 0, **train_kwargs
) -> nn.Sequential:
    """The gold standard: the same MLP trained from scratch on the retain set ``D_r`` only."""
    data = split.data
    model = make_mlp(data.num_features, data.num_classes, hidden, seed=seed)
    train_classifier(model, split.x_retain, split.y_retain, seed=seed, **train_kwargs)
    return model
