"""A small multi-layer perceptron for tabular / flattened-image classification."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["make_mlp"]


def make_mlp(
    in_features: int,
    num_classes: int,
    hidden: Sequence[int] = (128,),
    *,
    seed: int = 0,
) -> nn.Sequential:
    """``x [B, D] → logits [B, C]``: ``Linear → ReLU`` for each hidden width, then ``Linear``.

    The initial weights are drawn from a generator seeded with ``seed`` (PyTorch's default
    initialisation, under ``torch.random.fork_rng`` so the global RNG is left untouched).

    Args:
        in_features: ``D``, ≥ 1.
        num_classes: ``C``, ≥ 2.
        hidden: widths of the hidden layers (may be empty: a linear model).
        seed: seed of the initial weights.
    """
    if in_features < 1:
        raise ValueError(f"in_features must be ≥ 1, got {in_features}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be ≥ 2, got {num_classes}")
    widths = [int(w) for w in hidden]
    if any(w < 1 for w in widths):
        raise ValueError(f"hidden widths must be ≥ 1, got {list(hidden)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        width = in_features
        for out in widths:
            layers += [nn.Linear(width, out), nn.ReLU()]
            width = out
        layers.append(nn.Linear(width, num_classes))
        return nn.Sequential(*layers)
