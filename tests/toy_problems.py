"""Small problems with known solutions, shared by the engine and solver tests."""

from __future__ import annotations

import torch

from constrained_unlearn.engine import PairedData, Terms
from constrained_unlearn.problem import ConstraintSpec

# min x1² + x2²  s.t.  1 − x1 − x2 ≤ 0,  x1 ≤ 0.3,  x2 ≤ 5, written with positive bounds:
#   c1 = 2 − x1 − x2 ≤ 1,   c2 = x1 + 1 ≤ 1.3,   c3 = x2 + 1 ≤ 6.
# KKT by hand: c1 and c2 active → x* = (0.3, 0.7); stationarity
#   2·0.3 − λ1 + λ2 = 0,  2·0.7 − λ1 = 0  →  λ1 = 1.4, λ2 = 0.8; c3 inactive → λ3 = 0.
KKT_X = (0.3, 0.7)
KKT_LAMBDA = {"c1": 1.4, "c2": 0.8, "c3": 0.0}
KKT_CONSTRAINTS = [
    ConstraintSpec("c1", bound=1.0),
    ConstraintSpec("c2", bound=1.3),
    ConstraintSpec("c3", bound=6.0),
]


class Point(torch.nn.Module):
    def __init__(self, start=(0.0, 0.0)) -> None:
        super().__init__()
        self.x = torch.nn.Parameter(torch.tensor(start, dtype=torch.float32))


def kkt_terms(model: torch.nn.Module, forget, retain) -> Terms:
    x = model.x
    return Terms(
        objective=(x**2).sum(),
        constraints={"c1": 2 - x[0] - x[1], "c2": x[0] + 1, "c3": x[1] + 1},
    )


def dummy_data(n: int = 50) -> PairedData:
    return PairedData(torch.zeros(n, 1), torch.zeros(n, 1), batch_size=1, seed=0)


# A small classifier problem: forget = margin loss on forget logits, retain = CE ≤ ε.
def classifier_data(n: int = 32, features: int = 5, classes: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x_f = torch.randn(n, features, generator=generator)
    y_f = torch.randint(0, classes, (n,), generator=generator)
    x_r = torch.randn(n, features, generator=generator)
    y_r = torch.randint(0, classes, (n,), generator=generator)
    forget = torch.utils.data.TensorDataset(x_f, y_f)
    retain = torch.utils.data.TensorDataset(x_r, y_r)
    return forget, retain


def linear_model(features: int = 5, classes: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(features, classes)


def classifier_terms(model, forget, retain) -> Terms:
    from constrained_unlearn.losses import margin_flattening_loss

    x_f, _ = forget
    x_r, y_r = retain
    return Terms(
        objective=margin_flattening_loss(model(x_f)),
        constraints={"retain": torch.nn.functional.cross_entropy(model(x_r), y_r)},
    )
