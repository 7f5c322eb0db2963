"""The engine's step: accumulation, warm-up, dual schedule, guards."""

import math

import pytest
import torch
from toy_problems import classifier_data, classifier_terms, linear_model

from constrained_unlearn.engine import (
    Callback,
    EngineConfig,
    NonFiniteError,
    PairedData,
    Terms,
    TermsError,
    UnlearningEngine,
)
from constrained_unlearn.problem import ConstraintSpec, InfeasibleStartWarning


def make_engine(batch=8, k=1, solver="gda", epochs=3, bound=0.9, **solver_kwargs):
    forget, retain = classifier_data()
    data = PairedData(forget, retain, batch_size=batch, seed=3)
    kwargs = {"multiplier_init": 1.0, "dual_lr": 0.5, **solver_kwargs}
    return UnlearningEngine(
        linear_model(),
        classifier_terms,
        data,
        constraints=[ConstraintSpec("retain", bound=bound)],
        solver=solver,
        solver_kwargs=kwargs,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05),
        config=EngineConfig(
            epochs=epochs,
            gradient_accumulation_steps=k,
            max_grad_norm=None,
            progress=False,
            cpu=True,
            infeasible_patience=None,
        ),
    )


@pytest.mark.parametrize("solver", ["gda", "extragradient"])
def test_accumulation_equals_large_batch(solver):
    big = make_engine(batch=8, k=1, solver=solver)
    big_history = big.fit()
    small = make_engine(batch=2, k=4, solver=solver)
    small_history = small.fit()
    assert len(big_history) == len(small_history) == 12
    for p, q in zip(big.unwrapped_model.parameters(), small.unwrapped_model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    lam_big = big_history.series("retain/multiplier")
    lam_small = small_history.series("retain/multiplier")
    assert lam_big == pytest.approx(lam_small, abs=1e-6)
    assert len(set(lam_big)) > 3  # λ really moved


def test_dual_moves_once_per_optimizer_step():
    engine = make_engine(batch=2, k=4, epochs=1)
    history = engine.fit()
    # 16 micro-batches, K = 4 → 4 optimiser steps, 4 dual updates
    assert len(history) == 4
    lam = 1.0
    for record in history:
        expected = max(0.0, lam + 0.5 * record.violations["retain"])
        assert record.multipliers["retain"] == pytest.approx(expected, abs=1e-6)
        lam = record.multipliers["retain"]


def test_warmup_keeps_lambda_exactly_and_optimizer_state_untouched():
    engine = make_engine(solver="nupi", warmup_steps=5, kp=1.0, ki=1.0, bound=0.5)
    state_sizes = []

    class WatchDualState(Callback):
        def on_step_end(self, engine, record):
            state_sizes.append(len(engine.dual_optimizer.state))

    engine.callbacks.append(WatchDualState())
    history = engine.fit()
    assert state_sizes[:5] == [0] * 5 and state_sizes[5] == 1  # nuPI memory untouched in warm-up
    for record in history.records[:5]:
        assert record.multipliers["retain"] == 1.0
        assert not record.dual_live
    assert history.records[5].dual_live
    assert history.records[5].multipliers["retain"] != 1.0


def test_warmup_epochs_and_per_epoch_dual_update():
    engine = make_engine(epochs=3, warmup_epochs=1, dual_update="epoch", bound=0.5)
    history = engine.fit()
    by_epoch = {}
    for record in history:
        by_epoch.setdefault(record.epoch, set()).add(record.multipliers["retain"])
    # λ constant inside each epoch; frozen through epoch 0 and its end
    assert by_epoch[0] == {1.0} and by_epoch[1] == {1.0}
    assert len(by_epoch[2]) == 1 and by_epoch[2] != {1.0}
    epoch1 = [r.violations["retain"] for r in history if r.epoch == 1]
    assert by_epoch[2].pop() == pytest.approx(max(0.0, 1.0 + 0.5 * sum(epoch1) / len(epoch1)))


def test_penalty_never_moves():
    history = make_engine(solver="penalty", bound=0.1).fit()
    assert {r.multipliers["retain"] for r in history} == {1.0}


def test_calibration_sets_bound_from_start():
    forget, retain = classifier_data()
    engine = UnlearningEngine(
        linear_model(),
        classifier_terms,
        PairedData(forget, retain, batch_size=8),
        constraints=[ConstraintSpec("retain", bound=None, slack=0.25)],
        config=EngineConfig(epochs=1, progress=False, cpu=True),
    )
    engine.fit()
    start = engine.initial_values["retain"]
    with torch.no_grad():
        x, y = retain.tensors
        direct = torch.nn.functional.cross_entropy(linear_model()(x), y).item()
    assert start == pytest.approx(direct, rel=1e-5)  # all 4 batches of 8, equal sizes
    assert engine.problem.bounds["retain"] == pytest.approx(1.25 * start)


def test_infeasible_start_warns():
    with pytest.warns(InfeasibleStartWarning, match="infeasible at the start"):
        make_engine(bound=0.01, epochs=1).fit()


def test_second_constraint_needs_no_code_change():
    forget, retain = classifier_data()

    def terms(model, f, r):
        base = classifier_terms(model, f, r)
        return Terms(base.objective, {**base.constraints, "weight_norm": model.weight.pow(2).sum()})

    engine = UnlearningEngine(
        linear_model(),
        terms,
        PairedData(forget, retain, batch_size=8),
        constraints=[ConstraintSpec("retain", bound=2.0), ConstraintSpec("weight_norm", bound=1.0)],
        config=EngineConfig(epochs=1, progress=False, cpu=True),
        lr=0.01,
    )
    history = engine.fit()
    assert set(history.records[-1].multipliers) == {"retain", "weight_norm"}
    assert [n for n, _ in engine.problem.named_constraints()] == ["retain", "weight_norm"]


# -- bad input ---------------------------------------------------------------------------------
def test_unknown_solver_names_valid_ones():
    with pytest.raises(
        ValueError, match=r"unknown solver 'extragradiant'.*Did you mean 'extragradient'"
    ):
        make_engine(solver="extragradiant")


@pytest.mark.parametrize("bound", [0.0, -1.0, math.inf, math.nan])
def test_bad_epsilon(bound):
    with pytest.raises(ValueError, match="epsilon .* must be a finite number > 0"):
        ConstraintSpec("retain", bound=bound)


def test_negative_initial_multiplier():
    with pytest.raises(ValueError, match="multiplier_init must be a finite number ≥ 0"):
        make_engine(multiplier_init=-1.0)


@pytest.mark.parametrize("which", ["forget", "retain"])
def test_empty_loader(which):
    forget, retain = classifier_data()
    empty = torch.utils.data.TensorDataset(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    sets = {"forget": forget, "retain": retain, which: empty}
    with pytest.raises(ValueError, match=f"the {which} set is empty"):
        PairedData(sets["forget"], sets["retain"])


def test_non_scalar_loss_is_rejected_before_training():
    forget, retain = classifier_data()

    def terms(model, f, r):
        base = classifier_terms(model, f, r)
        return Terms(model(f[0]).sum(dim=1), base.constraints)

    engine = UnlearningEngine(
        linear_model(),
        terms,
        PairedData(forget, retain, batch_size=8),
        constraints=[ConstraintSpec("retain", bound=1.0)],
        config=EngineConfig(progress=False, cpu=True),
    )
    with pytest.raises(
        TermsError, match=r"forget objective must be a scalar tensor, got shape torch.Size\(\[8\]\)"
    ):
        engine.fit()
    assert len(engine.history) == 0


def test_non_finite_loss_stops_without_updating():
    forget, retain = classifier_data()
    calls = {"n": 0}

    def terms(model, f, r):
        calls["n"] += 1
        base = classifier_terms(model, f, r)
        if calls["n"] > 2:  # steps 0 and 1 (ε given: no calibration pass), then NaN
            return Terms(base.objective * float("nan"), base.constraints)
        return base

    model = linear_model()
    engine = UnlearningEngine(
        model,
        terms,
        PairedData(forget, retain, batch_size=8),
        constraints=[ConstraintSpec("retain", bound=5.0)],
        config=EngineConfig(progress=False, cpu=True),
        lr=0.01,
    )
    before = None

    class Snapshot(Callback):
        def on_step_end(self, engine, record):
            nonlocal before
            before = [p.detach().clone() for p in engine.unwrapped_model.parameters()]

    engine.callbacks.append(Snapshot())
    with pytest.raises(NonFiniteError, match="non-finite forget objective .* at optimiser step 2"):
        engine.fit()
    for p, q in zip(engine.unwrapped_model.parameters(), before):
        assert torch.equal(p, q)
