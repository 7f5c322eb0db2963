"""Solvers own their step on the engine's primitives: numbers pinned to the pre-redesign engine,
one set of solver_kwargs under all six names, the once-per-step dual invariant, a new scheme
without touching the engine."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from toy_problems import classifier_data, classifier_terms, linear_model

from constrained_unlearn.engine import EngineConfig, PairedData, Terms, UnlearningEngine
from constrained_unlearn.problem import ConstraintSpec
from constrained_unlearn.solvers import SOLVERS, Solver, StepResult, make_solver


def two_constraint_terms(model, forget, retain) -> Terms:
    base = classifier_terms(model, forget, retain)
    return Terms(base.objective, {**base.constraints, "weight_norm": model.weight.pow(2).sum()})


def short_run(solver: str, dual_update: str = "step", bound: float | None = 0.9):
    """2 epochs × 4 steps, K = 2, Adam, linear LR decay, clipping at 0.5, two constraints."""
    forget, retain = classifier_data()
    engine = UnlearningEngine(
        linear_model(),
        two_constraint_terms,
        PairedData(forget, retain, batch_size=4, seed=3),
        constraints=[
            ConstraintSpec("retain", bound=bound, slack=0.05),
            ConstraintSpec("weight_norm", bound=0.6),
        ],
        solver=solver,
        solver_kwargs={"multiplier_init": 0.5, "dual_lr": 0.3, "dual_update": dual_update},
        optimizer=lambda p: torch.optim.Adam(p, lr=0.05),
        config=EngineConfig(
            epochs=2,
            gradient_accumulation_steps=2,
            max_grad_norm=0.5,
            lr_scheduler="linear",
            progress=False,
            cpu=True,
            infeasible_patience=None,
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = engine.fit()
    digest = hashlib.sha256()
    for name, tensor in engine.unwrapped_model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().numpy().tobytes())
    trajectory = repr(
        [r.objective for r in history]
        + [r.values for r in history]
        + [r.multipliers for r in history]
    )
    return (
        digest.hexdigest()[:32],
        {k: v.hex() for k, v in engine.problem.multiplier_values().items()},
        hashlib.sha256(trajectory.encode()).hexdigest()[:16],
        len(history),
    )


# Computed with the engine on main before the redesign (commit e2e41e2, CPU, one thread):
# sha256 of the final parameters, final λ (float.hex), sha256 of every step's objective, values
# and multipliers, number of steps.
PINNED = {
    ("gda", "step", 0.9): (
        "43225f546eddaa5a35d9bd244079c225",
        {"retain": "0x1.376b960000000p+0", "weight_norm": "0x0.0p+0"},
        "5715e7d6f523b5ce",
        8,
    ),
    ("alternating-gda", "step", 0.9): (
        "fe61aecf0c0e64e8339339f57f673c3d",
        {"retain": "0x1.1dfbf80000000p+0", "weight_norm": "0x0.0p+0"},
        "9ff2fecdabfc7c56",
        8,
    ),
    ("extragradient", "step", 0.9): (
        "9ef9d81a98f8e9f61252512ac4164e0c",
        {"retain": "0x1.26b93a0000000p+0", "weight_norm": "0x0.0p+0"},
        "9a577832f2b0812b",
        8,
    ),
    ("augmented-lagrangian", "step", 0.9): (
        "56c8c4575c48ca11f5e60b6f35a9fa35",
        {"retain": "0x1.1ec6360000000p+0", "weight_norm": "0x0.0p+0"},
        "cdd95f20395c0478",
        8,
    ),
    ("nupi", "step", 0.9): (
        "5acde036f69b4a13f32773e50cef03bb",
        {"retain": "0x1.4776560000000p+0", "weight_norm": "0x0.0p+0"},
        "b35946176b9803e7",
        8,
    ),
    ("penalty", "step", 0.9): (
        "bb1784d9a8015f41d1f179da64fde8bd",
        {"retain": "0x1.0000000000000p-1", "weight_norm": "0x1.0000000000000p-1"},
        "e3f54415e72ec09c",
        8,
    ),
    ("gda", "epoch", 0.9): (
        "9d18a13ebf42ee1b93d6cc3424d12ea3",
        {"retain": "0x1.5c29520000000p-1", "weight_norm": "0x1.6c920c0000000p-2"},
        "e4cddc0afc368460",
        8,
    ),
    ("extragradient", "epoch", 0.9): (
        "be0d826a29ca156edbf1325aa65d32a4",
        {"retain": "0x1.5fbbfc0000000p-1", "weight_norm": "0x1.64e3a00000000p-2"},
        "f6a3ae025e155e76",
        8,
    ),
    ("alternating-gda", "step", None): (
        "f81b3293c382686c05e4880e7e04ebaf",
        {"retain": "0x0.0p+0", "weight_norm": "0x0.0p+0"},
        "584d4deea8b50aba",
        8,
    ),
}


@pytest.mark.parametrize("case", sorted(PINNED, key=repr), ids=repr)
def test_same_numbers_as_before_the_redesign(case):
    torch.set_num_threads(1)
    assert short_run(*case) == PINNED[case]


def test_one_set_of_solver_kwargs_runs_under_all_six_names():
    """The demo's kwargs, nothing else changed: every solver takes η = 100 and λ₀ = 20."""
    forget, retain = classifier_data()
    kwargs = {"multiplier_init": 20, "dual_lr": 100}
    moved = {}
    for name in sorted(SOLVERS):
        solver = make_solver(name, **kwargs)
        assert solver.dual_lr == 100 and solver.multiplier_init == 20  # never rewritten
        engine = UnlearningEngine(
            linear_model(),
            classifier_terms,
            PairedData(forget, retain, batch_size=8, seed=3),
            constraints=[ConstraintSpec("retain", bound=0.5)],
            solver=name,
            solver_kwargs=dict(kwargs),
            optimizer=lambda p: torch.optim.SGD(p, lr=0.01),
            config=EngineConfig(max_steps=2, progress=False, cpu=True, infeasible_patience=None),
        )
        if engine.dual_optimizer is not None:
            assert engine.dual_optimizer.param_groups[0]["lr"] == 100.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = engine.fit()
        assert len(history) == 2
        first = history.records[0]
        moved[name] = first.multipliers["retain"]
        if name == "gda":  # λ₁ = max(0, λ₀ + η g(θ₀)) by hand
            expected = max(0.0, 20 + 100 * first.violations["retain"])
            assert first.multipliers["retain"] == pytest.approx(expected, rel=1e-6)
    assert moved["penalty"] == 20.0
    assert all(moved[n] != 20.0 for n in SOLVERS if n != "penalty")  # the start is infeasible


class TwiceDual(Solver):
    """A broken scheme: two dual steps in one optimiser step."""

    name: ClassVar[str] = "twice-dual"

    def step(self, ctx, micro):
        seen = ctx.observe(micro, backward=True)
        grad_norm = ctx.primal_step()
        ctx.dual_step(seen.values)
        ctx.dual_step(seen.values)
        return StepResult(seen, grad_norm)


@dataclass
class DualFirst(Solver):
    """A new scheme written outside the engine: λ moves first, then θ at the new λ.

    λ_{t+1} = max(0, λ_t + η g(θ_t));  θ_{t+1} = θ_t − α ∇_θ L(θ_t, λ_{t+1})
    """

    name: ClassVar[str] = "dual-first"

    def step(self, ctx, micro):
        seen = ctx.observe(micro, backward=False)  # g(θ_t)
        ctx.dual_step(seen.values)  # λ_{t+1}
        ctx.observe(micro, backward=True)  # ∇_θ L(θ_t, λ_{t+1})
        return StepResult(seen, ctx.primal_step())


def _engine_with(solver: Solver, **config) -> UnlearningEngine:
    forget, retain = classifier_data()
    return UnlearningEngine(
        linear_model(),
        classifier_terms,
        PairedData(forget, retain, batch_size=8, seed=3),
        constraints=[ConstraintSpec("retain", bound=0.5)],
        solver=solver,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05),
        config=EngineConfig(
            progress=False, cpu=True, infeasible_patience=None, max_grad_norm=None, **config
        ),
    )


def test_the_primitives_refuse_a_second_dual_step_in_one_optimizer_step():
    engine = _engine_with(TwiceDual(multiplier_init=1.0, dual_lr=0.5), max_steps=1)
    with pytest.raises(RuntimeError, match="λ moves once per optimiser step"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            engine.fit()


def test_a_new_scheme_needs_no_engine_change():
    engine = _engine_with(DualFirst(multiplier_init=1.0, dual_lr=0.5), max_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = engine.fit()
    lam = 1.0
    for record in history:  # λ after each step: one projected ascent step on g(θ_t)
        lam = max(0.0, lam + 0.5 * record.violations["retain"])
        assert record.multipliers["retain"] == pytest.approx(lam, abs=1e-6)


def test_warm_up_and_epoch_cadence_hold_for_any_solver():
    """The primitives make dual_step a no-op in warm-up, whatever the solver does."""
    engine = _engine_with(DualFirst(multiplier_init=1.0, dual_lr=0.5, warmup_steps=2), max_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = engine.fit()
    assert [r.multipliers["retain"] for r in history.records[:2]] == [1.0, 1.0]
    assert history.records[2].multipliers["retain"] != 1.0


def test_validation_never_rewrites_a_field_and_names_the_argument():
    solver = make_solver("augmented-lagrangian", penalty=2.0)
    assert solver.dual_lr is None and solver.dual_step_size == 2.0
    with pytest.raises(ValueError, match="dual_lr must be a finite number ≥ 0 for solver 'gda'"):
        make_solver("gda", dual_lr=None)
    with pytest.raises(ValueError, match="kp must be a finite number ≥ 0, got 'x'"):
        make_solver("nupi", kp="x")
    with pytest.raises(ValueError, match=r"multiplier_init must be a finite number ≥ 0 \(constr"):
        make_solver("gda", multiplier_init={"retain": -1.0}).build_problem(
            [ConstraintSpec("retain", bound=1.0)]
        )
