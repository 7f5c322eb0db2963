"""Start-up and end of a run: starting values without an extra pass when ε is given (#16),
calibration on a chosen subset, micro-batches streamed K at a time, the end-of-fit feasibility
check (#13.5)."""

from __future__ import annotations

import warnings

import pytest
import torch
from toy_problems import classifier_data, classifier_terms, linear_model

from constrained_unlearn.engine import (
    ConstraintInfeasibleWarning,
    EngineConfig,
    PairedData,
    UnlearningEngine,
)
from constrained_unlearn.problem import ConstraintSpec, InfeasibleStartWarning


class Counting:
    """Terms and collate functions that count their calls (and the mode of the model)."""

    def __init__(self) -> None:
        self.terms: list[bool] = []  # model.training at each call
        self.collated = 0
        self.collated_at_first_training_call: int | None = None

    def terms_fn(self, model, forget, retain):
        if model.training and self.collated_at_first_training_call is None:
            self.collated_at_first_training_call = self.collated
        self.terms.append(model.training)
        return classifier_terms(model, forget, retain)

    def collate(self, examples):
        self.collated += 1
        return torch.utils.data.default_collate(examples)


def make_engine(counting: Counting, bound=0.9, k=2, **config) -> UnlearningEngine:
    forget, retain = classifier_data()  # 32 examples, batch 4: 8 micro-batches per epoch
    data = PairedData(forget, retain, batch_size=4, seed=3, collate_fn=counting.collate)
    settings = {"epochs": 1, "progress": False, "cpu": True, "infeasible_patience": None}
    return UnlearningEngine(
        linear_model(),
        counting.terms_fn,
        data,
        constraints=[ConstraintSpec("retain", bound=bound, slack=0.2)],
        solver_kwargs={"multiplier_init": 1.0, "dual_lr": 0.5},
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05),
        config=EngineConfig(gradient_accumulation_steps=k, **{**settings, **config}),
    )


def quiet_fit(engine):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return engine.fit()


def test_given_bounds_need_no_extra_pass_and_take_step_0s_values():
    counting = Counting()
    engine = make_engine(counting, bound=5.0)
    history = engine.fit()
    assert counting.terms == [True] * 8  # 4 steps × K = 2, all training, no calibration pass
    assert engine.initial_values == history.records[0].values  # mean of step 0's K batches


def test_an_infeasible_given_bound_still_warns_at_the_start():
    engine = make_engine(Counting(), bound=0.01, max_steps=1)
    with pytest.warns(InfeasibleStartWarning, match="infeasible at the start: value 1.5"):
        engine.fit()


def test_calibration_on_a_chosen_subset_and_by_default_on_all_of_epoch_0():
    forget, retain = classifier_data()
    data = PairedData(forget, retain, batch_size=4, seed=3)
    model = linear_model()
    pairs = list(data.iter_epoch(0))
    with torch.no_grad():
        by_hand = [classifier_terms(model, f, r).constraints["retain"].item() for f, r in pairs]

    counting = Counting()
    engine = make_engine(counting, bound=None, calibration_batches=3)
    quiet_fit(engine)
    assert counting.terms[:3] == [False] * 3 and counting.terms[3:] == [True] * 8
    assert engine.initial_values["retain"] == pytest.approx(sum(by_hand[:3]) / 3, rel=1e-6)
    assert engine.problem.bounds["retain"] == pytest.approx(1.2 * sum(by_hand[:3]) / 3, rel=1e-6)

    counting = Counting()
    engine = make_engine(counting, bound=None)  # default: every pair of epoch 0
    quiet_fit(engine)
    assert counting.terms[:8] == [False] * 8
    assert engine.initial_values["retain"] == pytest.approx(sum(by_hand) / 8, rel=1e-6)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_micro_batches_are_streamed_k_at_a_time(k):
    counting = Counting()
    engine = make_engine(counting, bound=5.0, k=k)
    engine.fit()
    # the first step's K pairs (forget + retain each) are collated, not the whole epoch's 8
    assert counting.collated_at_first_training_call == 2 * k
    assert counting.collated == 2 * 8  # every pair collated exactly once
    assert len(engine.history) == 8 // k


def test_the_end_of_fit_reports_feasibility_and_warns_with_the_factor():
    engine = make_engine(Counting(), bound=0.05)  # far below any reachable cross-entropy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = engine.fit()
    last = history.records[-1].values["retain"]
    report = engine.feasibility["retain"]
    assert (report.value, report.bound, report.satisfied) == (last, 0.05, False)
    assert report.factor == pytest.approx(last / 0.05)
    assert history.feasibility == engine.feasibility
    messages = [str(w.message) for w in caught if w.category is ConstraintInfeasibleWarning]
    assert messages == [
        next(m for m in messages if f"({report.factor:.4g} × the bound, tolerance 0.001)" in m)
    ]


def test_the_feasibility_tolerance_applies():
    engine = make_engine(Counting(), bound=1.0)
    quiet_fit(engine)
    value = engine.history.records[-1].values["retain"]
    tolerance = value / 1.0 - 1.0 + 1e-3  # just enough
    engine = make_engine(Counting(), bound=1.0, feasibility_tolerance=max(tolerance, 0.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine.fit()
    assert engine.feasibility["retain"].satisfied
    assert not [w for w in caught if w.category is ConstraintInfeasibleWarning]


@pytest.mark.parametrize("field", ["epochs", "max_steps", "gradient_accumulation_steps", "seed"])
def test_engine_config_refuses_booleans_for_numbers(field):
    from constrained_unlearn.engine import EngineConfig

    with pytest.raises(ValueError, match=f"{field} must be a number, got the boolean True"):
        EngineConfig(**{field: True})


def test_engine_config_refuses_a_negative_feasibility_tolerance():
    from constrained_unlearn.engine import EngineConfig

    with pytest.raises(ValueError, match="feasibility_tolerance must be a finite number ≥ 0"):
        EngineConfig(feasibility_tolerance=-0.5)
