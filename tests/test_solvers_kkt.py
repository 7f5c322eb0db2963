"""Every solver reaches the KKT point of a small inequality-constrained problem."""

import pytest
import torch
from toy_problems import KKT_CONSTRAINTS, KKT_LAMBDA, KKT_X, Point, dummy_data, kkt_terms

from constrained_unlearn.engine import EngineConfig, UnlearningEngine
from constrained_unlearn.solvers import SOLVERS

SETTINGS = {
    "gda": {"dual_lr": 0.1},
    "alternating-gda": {"dual_lr": 0.1},
    "extragradient": {"dual_lr": 0.1},
    "augmented-lagrangian": {"penalty": 1.0},
    "nupi": {"dual_lr": 0.1, "kp": 1.0, "ki": 1.0},
}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_solver_reaches_kkt_point(name):
    engine = UnlearningEngine(
        Point(),
        kkt_terms,
        dummy_data(100),
        constraints=KKT_CONSTRAINTS,
        solver=name,
        solver_kwargs={"multiplier_init": 0.0, **SETTINGS[name]},
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
        config=EngineConfig(
            epochs=15, max_grad_norm=None, progress=False, cpu=True, infeasible_patience=None
        ),
    )
    engine.fit()
    x = engine.unwrapped_model.x.detach()
    lambdas = engine.problem.multiplier_values()
    assert torch.allclose(x, torch.tensor(KKT_X), atol=1e-3), (name, x)
    for key, expected in KKT_LAMBDA.items():
        assert abs(lambdas[key] - expected) < 1e-3, (name, key, lambdas[key])


def test_every_registered_solver_is_covered():
    assert set(SOLVERS) == set(SETTINGS) | {"penalty"}


def test_penalty_never_moves_lambda():
    engine = UnlearningEngine(
        Point(),
        kkt_terms,
        dummy_data(20),
        constraints=KKT_CONSTRAINTS,
        solver="penalty",
        solver_kwargs={"multiplier_init": {"c1": 1.4, "c2": 0.8, "c3": 0.0}},
        optimizer=lambda params: torch.optim.SGD(params, lr=0.05),
        config=EngineConfig(epochs=5, max_grad_norm=None, progress=False, cpu=True),
    )
    history = engine.fit()
    assert engine.dual_optimizer is None
    for record in history:
        assert record.multipliers == pytest.approx({"c1": 1.4, "c2": 0.8, "c3": 0.0}, abs=1e-7)
    # with λ frozen at λ*, the penalised problem's minimiser is still x*
    # (∇f + Σ λ* ∇c = 0 at x*), and SGD converges towards it
    assert torch.allclose(engine.unwrapped_model.x.detach(), torch.tensor(KKT_X), atol=0.05)


def test_augmented_lagrangian_takes_the_shared_dual_step():
    """dual_lr means the dual step η for every solver; the augmented Lagrangian defaults η = c."""
    from constrained_unlearn.solvers import make_solver

    assert make_solver("augmented-lagrangian", penalty=2.0).dual_step_size == 2.0
    solver = make_solver("augmented-lagrangian", penalty=2.0, dual_lr=100.0, multiplier_init=20)
    assert solver.dual_step_size == 100.0
    assert solver.dual_lr == 100.0  # never rewritten
