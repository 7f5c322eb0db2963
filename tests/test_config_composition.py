"""The run config composes the layers' settings instead of mirroring them (issue #12.3)."""

from __future__ import annotations

import dataclasses

import pytest

from constrained_unlearn.recipes.config import ConfigError, MethodConfig, load_config
from constrained_unlearn.solvers import SHARED_HYPERPARAMETERS, Solver


def test_shared_solver_keys_are_forwarded_not_redefined():
    method_fields = {f.name: f for f in dataclasses.fields(MethodConfig)}
    solver_fields = {f.name: f for f in dataclasses.fields(Solver)}
    for key in SHARED_HYPERPARAMETERS:
        assert key in solver_fields  # defined (and defaulted) by the solver ...
        assert method_fields[key].default is None  # ... and only forwarded by the config
    assert MethodConfig().solver_overrides() == {}


def test_unset_keys_take_the_method_then_the_solver_default():
    cfg = load_config(None, ["method.name=npo", "method.solver=gda", "method.dual_lr=3.0"])
    solver = cfg.method.build_solver()
    assert solver.name == "gda"
    assert solver.dual_lr == 3.0  # set in the config
    assert solver.multiplier_init == 1.0  # NPO's retain weight, the method's default λ₀
    assert solver.dual_update == "step"  # the solver's own default
    assert cfg.method.dual_update is None  # nothing written back into the config


def test_a_bad_solver_value_is_reported_once_by_the_solver():
    with pytest.raises(ConfigError, match="dual_update must be 'step' or 'epoch', got 'often'"):
        load_config(None, ["method.dual_update=often"]).validate()
    with pytest.raises(ConfigError, match="warmup_steps must be an integer ≥ 0"):
        load_config(None, ["method.warmup_steps=-1"]).validate()
    with pytest.raises(ConfigError, match="accepts"):  # an option the solver does not have
        load_config(None, ["method.solver_options={kp: 1.0}"]).validate()


def test_the_same_settings_run_under_every_solver():
    from constrained_unlearn.solvers import SOLVERS

    for name in SOLVERS:
        cfg = load_config(
            None, [f"method.solver={name}", "method.multiplier_init=20", "method.dual_lr=300"]
        )
        assert cfg.validate().method.build_solver().name == name


def test_the_record_holds_the_values_that_ran():
    from constrained_unlearn.methods import get_method
    from constrained_unlearn.recipes.llm_unlearn import resolved_config

    cfg = load_config(None, ["method.name=pdu", "method.dual_lr=7"])
    before = cfg.to_dict()
    name, kwargs = get_method("pdu").solver_settings(None, **cfg.method.solver_overrides())

    class Setup:  # resolved_config reads only the resolved solver and its kwargs
        solver, solver_kwargs = name, kwargs

    record = resolved_config(cfg, Setup())  # type: ignore[arg-type]
    assert record["method"]["dual_lr"] == 7.0
    assert record["method"]["warmup_steps"] == 0 and record["method"]["dual_update"] == "step"
    assert cfg.to_dict() == before


def test_yaml_booleans_spell_the_one_choice_they_name(tmp_path):
    # YAML 1.1 reads `no` as false: `training.mixed_precision=no` must mean "no", in an
    # override and in a file alike
    assert load_config(None, ["training.mixed_precision=no"]).training.mixed_precision == "no"
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  mixed_precision: no\n")
    assert load_config(path).training.mixed_precision == "no"
    with pytest.raises(ConfigError, match="mixed_precision must be one of 'no', 'bf16', 'fp16'"):
        load_config(None, ["training.mixed_precision=yes"])  # no choice is spelled `yes`
