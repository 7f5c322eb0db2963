"""Checkpoints in one process: layout, safe loading, atomic writes, pruning, refusals, Ctrl-C,
non-finite values and the infeasibility warning."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from toy_problems import classifier_data, classifier_terms, linear_model

import constrained_unlearn.engine.checkpoint as ckpt
from constrained_unlearn.engine import (
    Callback,
    ConstraintInfeasibleWarning,
    EngineConfig,
    NonFiniteError,
    PairedData,
    Terms,
    UnlearningEngine,
)
from constrained_unlearn.engine.checkpoint import CheckpointError, CheckpointWarning
from constrained_unlearn.problem import ConstraintSpec, InfeasibleStartWarning

BOUNDS = {"retain": 0.9, "weight_norm": 0.6, "bias_norm": 0.02}


def noisy_terms(model, forget, retain) -> Terms:
    """Classifier terms plus noise from the python, numpy and torch RNGs (during training)."""
    base = classifier_terms(model, forget, retain)
    inner = getattr(model, "module", model)
    noise = 0.0
    if inner.training:
        noise = 1e-3 * (torch.randn(()) + random.random() + float(np.random.rand()))
    return Terms(
        objective=base.objective + noise,
        constraints={
            "retain": base.constraints["retain"],
            "weight_norm": inner.weight.pow(2).sum(),
            "bias_norm": inner.bias.pow(2).sum(),
        },
    )


def make_engine(
    checkpoint_dir=None,
    names=("retain", "weight_norm", "bias_norm"),
    solver="nupi",
    terms=noisy_terms,
    data_seed=3,
    model=None,
    solver_kwargs=None,
    bounds=None,
    **config,
) -> UnlearningEngine:
    """32 examples, batch 4, K = 2: 4 optimiser steps per epoch; 2 epochs by default."""
    forget, retain = classifier_data()
    settings = {
        "epochs": 2,
        "gradient_accumulation_steps": 2,
        "lr_scheduler": "linear",
        "progress": False,
        "cpu": True,
        "infeasible_patience": None,
        "checkpoint_dir": checkpoint_dir,
        **config,
    }
    kwargs = {"multiplier_init": 0.5, "dual_lr": 0.3}
    if solver == "nupi":
        kwargs.update(kp=1.0, ki=1.0)
    kwargs.update(solver_kwargs or {})

    def selected(model, f, r):
        full = terms(model, f, r)
        return Terms(full.objective, {n: full.constraints[n] for n in names})

    return UnlearningEngine(
        model if model is not None else linear_model(),
        selected,
        PairedData(forget, retain, batch_size=4, seed=data_seed),
        constraints=[ConstraintSpec(n, bound={**BOUNDS, **(bounds or {})}[n]) for n in names],
        solver=solver,
        solver_kwargs=kwargs,
        optimizer=lambda p: torch.optim.Adam(p, lr=0.05),
        config=EngineConfig(**settings),
        run_config={"experiment": "unit", "lr": 0.05},
    )


def fit_quietly(engine: UnlearningEngine, **kwargs):
    """``fit`` without the (expected) infeasible-start warning of these tight bounds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=InfeasibleStartWarning)
        return engine.fit(**kwargs)


def assert_same_run(a: UnlearningEngine, b: UnlearningEngine) -> None:
    names = a.problem.constraint_names
    assert [r.step for r in a.history] == [r.step for r in b.history]
    for name in names:
        key = f"{name}/multiplier"
        assert a.history.series(key) == b.history.series(key), name
    assert a.history.series("objective") == b.history.series("objective")
    for (n, p), (_, q) in zip(
        a.unwrapped_model.named_parameters(), b.unwrapped_model.named_parameters()
    ):
        assert torch.equal(p, q), n


@pytest.fixture(scope="module")
def reference() -> UnlearningEngine:
    """The uninterrupted run (no checkpoints)."""
    torch.set_num_threads(1)
    engine = make_engine()
    fit_quietly(engine)
    assert len(engine.history) == 8
    return engine


class RaiseAt(Callback):
    """Raise ``error`` after optimiser step ``step`` (a crash that Python survives)."""

    def __init__(self, step: int, error: BaseException) -> None:
        self.step, self.error = step, error

    def on_step_end(self, engine, record) -> None:
        if engine.global_step == self.step:
            raise self.error


def names_of(paths) -> list[str]:
    return [p.name for p in paths]


# -- layout and safe loading --------------------------------------------------------------------
def test_layout_contents_and_weights_only_loading_with_nupi(tmp_path, reference):
    engine = make_engine(tmp_path, save_every=3)
    fit_quietly(engine)
    complete, incomplete = ckpt.list_checkpoints(tmp_path)
    assert names_of(complete) == ["checkpoint-3", "checkpoint-6", "checkpoint-8"]
    assert incomplete == []
    last = complete[-1]
    assert sorted(p.name for p in last.iterdir()) == sorted(
        [*ckpt.SHARED_FILES, "rng-0.pt", "COMPLETE"]
    )
    dual = torch.load(last / "dual.pt", weights_only=True)  # nuPI's enum is a safe global
    assert dual["constraint_names"] == ["retain", "weight_norm", "bias_norm"]
    assert dual["dual_param_names"] == dual["constraint_names"]
    group = dual["dual_optimizer"]["param_groups"][0]
    assert type(group["init_type"]).__name__ == "nuPIInitType"
    assert dual["bounds"] == BOUNDS
    for name, value in engine.problem.multiplier_values().items():
        assert dual["problem"]["multipliers"][name]["weight"].item() == value
    weights = load_file(str(last / "model.safetensors"))
    for name, param in engine.unwrapped_model.named_parameters():
        assert torch.equal(weights[name], param.detach())
    state = json.loads((last / "trainer_state.json").read_text())
    assert (state["global_step"], state["epoch"], state["position"]) == (8, 2, 0)
    assert state["world_size"] == 1 and state["signature"]["world_size"] == 1
    assert state["signature"]["engine.gradient_accumulation_steps"] == 2
    config = json.loads((last / "config.json").read_text())
    assert config["run_config"] == {"experiment": "unit", "lr": 0.05}
    assert config["engine_config"]["save_every"] == 3
    assert len(json.loads((last / "history.json").read_text())) == 8
    rng = torch.load(last / "rng-0.pt", weights_only=True)
    assert set(rng) == {"python", "numpy", "torch", "cuda"}
    assert_same_run(reference, engine)  # checkpointing does not change the run

    fresh = make_engine()
    fresh.load_checkpoint(last)
    assert fresh.problem.multiplier_values() == engine.problem.multiplier_values()
    assert fresh.problem.bounds == engine.problem.bounds
    assert fresh.global_step == 8 and len(fresh.history) == 8
    for p, q in zip(fresh.unwrapped_model.parameters(), engine.unwrapped_model.parameters()):
        assert torch.equal(p, q)
    a, b = fresh.optimizer.state_dict()["state"], engine.optimizer.state_dict()["state"]
    assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in b)
    assert fresh.lr_scheduler.state_dict()["last_epoch"] == 8


class Smuggled:
    """Not a tensor or a container: weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled arbitrary code",))


def rehash(path) -> None:
    """Rewrite the COMPLETE marker's checksums (a writer that stored bad content itself)."""
    marker = json.loads((path / "COMPLETE").read_text())
    marker["sha256"] = {
        name: ckpt.file_sha256(path / name) for name in marker["sha256"] if (path / name).exists()
    }
    (path / "COMPLETE").write_text(json.dumps(marker))


def test_loading_refuses_pickled_objects(tmp_path):
    engine = make_engine(tmp_path, max_steps=2)
    fit_quietly(engine)
    (path,) = ckpt.list_checkpoints(tmp_path)[0]
    torch.save({"optimizer": Smuggled()}, path / "optimizer.pt")
    with pytest.raises(
        ckpt.CheckpointDamagedError, match=r"optimizer.pt does not match its sha256"
    ):
        make_engine().load_checkpoint(path)
    rehash(path)  # past the checksum: weights_only loading still refuses the object
    fresh = make_engine()
    before = [p.detach().clone() for p in fresh.unwrapped_model.parameters()]
    with pytest.raises(CheckpointError, match=r"refusing to load .*optimizer.pt.*weights_only"):
        fresh.load_checkpoint(path)
    for p, q in zip(fresh.unwrapped_model.parameters(), before):  # nothing applied
        assert torch.equal(p, q)


# -- atomic writes, incomplete checkpoints, pruning --------------------------------------------
def test_crash_between_tmp_write_and_rename_keeps_previous_checkpoint(
    tmp_path, monkeypatch, reference
):
    real_replace = os.replace

    def crash_on_step_4(src, dst):
        if os.path.basename(dst) == "checkpoint-4":
            raise OSError("simulated crash before the rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_step_4)
    crashed = make_engine(tmp_path, save_every=2)
    with pytest.raises(CheckpointError, match="committing checkpoint .*checkpoint-4 failed"):
        fit_quietly(crashed)
    monkeypatch.setattr(os, "replace", real_replace)
    complete, incomplete = ckpt.list_checkpoints(tmp_path)
    assert names_of(complete) == ["checkpoint-2"]
    assert names_of(incomplete) == ["tmp-checkpoint-4"]
    assert (incomplete[0] / "model.safetensors").is_file()  # fully written, never renamed

    resumed = make_engine(tmp_path, save_every=2)
    with pytest.warns(CheckpointWarning, match="ignoring incomplete checkpoint .*tmp-checkpoint-4"):
        fit_quietly(resumed, resume=True)
    assert resumed.resumed_from.name == "checkpoint-2"
    assert_same_run(reference, resumed)
    complete, incomplete = ckpt.list_checkpoints(tmp_path)
    assert incomplete == []  # the next save removed the stale tmp directory
    assert names_of(complete) == ["checkpoint-2", "checkpoint-4", "checkpoint-6", "checkpoint-8"]


def test_checkpoint_without_complete_marker_is_ignored_and_reported(tmp_path, reference):
    fit_quietly(make_engine(tmp_path, save_every=2))
    for step in (6, 8):
        (tmp_path / f"checkpoint-{step}" / "COMPLETE").unlink()
    resumed = make_engine(tmp_path, save_every=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed.fit(resume=True)
    reports = [str(w.message) for w in caught if w.category is CheckpointWarning]
    assert len(reports) == 2
    assert all("the newest complete one is" in r and r.endswith("checkpoint-4") for r in reports)
    assert resumed.resumed_from.name == "checkpoint-4"
    assert_same_run(reference, resumed)
    complete, incomplete = ckpt.list_checkpoints(tmp_path)  # the damaged ones were rewritten
    assert names_of(complete)[-2:] == ["checkpoint-6", "checkpoint-8"] and incomplete == []


def test_loading_an_incomplete_checkpoint_is_refused(tmp_path):
    fit_quietly(make_engine(tmp_path, max_steps=2))
    (tmp_path / "checkpoint-2" / "COMPLETE").unlink()
    with pytest.raises(CheckpointError, match="not a complete checkpoint .*no COMPLETE marker"):
        make_engine().load_checkpoint(tmp_path / "checkpoint-2")


def test_keep_last_prunes_by_step_number(tmp_path):
    engine = make_engine(tmp_path, save_every=1, keep_last=3, epochs=3)
    fit_quietly(engine)
    complete, incomplete = ckpt.list_checkpoints(tmp_path)
    # numeric order: a lexical sort would keep checkpoint-9 over checkpoint-12
    assert names_of(complete) == ["checkpoint-10", "checkpoint-11", "checkpoint-12"]
    assert incomplete == []
    assert sorted(p.name for p in tmp_path.iterdir()) == names_of(complete)


def test_fresh_run_into_used_directory_warns(tmp_path):
    fit_quietly(make_engine(tmp_path, max_steps=1))
    with pytest.warns(CheckpointWarning, match="already holds checkpoints of another run"):
        fit_quietly(make_engine(tmp_path, max_steps=1))


# -- refusals -------------------------------------------------------------------------------------
def test_different_constraint_set_is_refused_with_both_lists(tmp_path):
    fit_quietly(make_engine(tmp_path, names=("retain", "weight_norm"), max_steps=2))
    other = make_engine(names=("retain",))
    before = [p.detach().clone() for p in other.unwrapped_model.parameters()]
    with pytest.raises(
        CheckpointError,
        match=r"written for constraints \['retain', 'weight_norm'\], this engine has \['retain'\]",
    ):
        other.load_checkpoint(tmp_path / "checkpoint-2")
    for p, q in zip(other.unwrapped_model.parameters(), before):
        assert torch.equal(p, q)
    assert other.global_step == 0 and len(other.history) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gradient_accumulation_steps": 1}, "engine.gradient_accumulation_steps: saved 2, now 1"),
        ({"data_seed": 4}, "data.seed: saved 3, now 4"),
        ({"solver": "gda"}, "solver: saved 'nupi', now 'gda'"),
    ],
)
def test_resuming_a_different_run_is_refused(tmp_path, change, message):
    fit_quietly(make_engine(tmp_path, max_steps=2))
    with pytest.raises(CheckpointError, match=message):
        make_engine(**change).load_checkpoint(tmp_path / "checkpoint-2")


def test_dual_state_is_matched_by_name_not_position(tmp_path):
    saved = make_engine(tmp_path, max_steps=5)
    fit_quietly(saved)
    by_name = {
        n: saved.dual_optimizer.state[p] for n, p in saved.problem.named_multiplier_parameters()
    }
    reordered = make_engine(names=("bias_norm", "retain", "weight_norm"), max_steps=5)
    reordered.load_checkpoint(tmp_path / "checkpoint-5")
    assert reordered.problem.multiplier_values() == saved.problem.multiplier_values()
    for name, param in reordered.problem.named_multiplier_parameters():
        state = reordered.dual_optimizer.state[param]
        assert state.keys() == by_name[name].keys()
        for key, value in by_name[name].items():
            assert torch.equal(state[key], value), (name, key)
    values = [next(iter(s.values())) for s in by_name.values()]
    assert not torch.equal(values[0], values[1])  # distinct states: a permutation would show


def test_config_checks_name_the_missing_setting():
    with pytest.raises(ValueError, match="save_every=3 needs a place to write: set checkpoint_dir"):
        EngineConfig(save_every=3)
    with pytest.raises(ValueError, match="resume=True .* checkpoint_dir"):
        EngineConfig(resume=True)
    with pytest.raises(ValueError, match="keep_last must be None or an integer ≥ 1"):
        EngineConfig(keep_last=0)


# -- interruptions ------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_finishes_the_step_checkpoints_and_resumes_exactly(tmp_path, reference, signum):
    class SendSigint(Callback):
        def on_step_end(self, engine, record):
            if engine.global_step == 5:
                os.kill(os.getpid(), signum)

    handler = signal.getsignal(signum)
    engine = make_engine(tmp_path, save_final=False)
    engine.callbacks.append(SendSigint())
    with pytest.raises(KeyboardInterrupt, match="checkpoint written to .*checkpoint-5"):
        fit_quietly(engine)
    assert signal.getsignal(signum) is handler  # the previous handler is back
    assert names_of(ckpt.list_checkpoints(tmp_path)[0]) == ["checkpoint-5"]
    resumed = make_engine(tmp_path)
    fit_quietly(resumed, resume=True)
    assert_same_run(reference, resumed)


def test_keyboard_interrupt_inside_a_step_saves_the_previous_boundary(tmp_path, reference):
    calls = {"training": 0}

    def interrupting_terms(model, forget, retain):
        terms = noisy_terms(model, forget, retain)  # draws from the RNGs first
        if getattr(model, "module", model).training:
            calls["training"] += 1
            if calls["training"] == 12:  # second micro-batch of step 6 (K = 2)
                raise KeyboardInterrupt
        return terms

    engine = make_engine(tmp_path, terms=interrupting_terms)
    with pytest.raises(KeyboardInterrupt):
        fit_quietly(engine)
    assert names_of(ckpt.list_checkpoints(tmp_path)[0]) == ["checkpoint-5"]
    resumed = make_engine(tmp_path)
    fit_quietly(resumed, resume=True)
    assert_same_run(reference, resumed)  # the RNG of the boundary, not of the half step


def test_crash_mid_epoch_with_per_epoch_dual_updates_resumes_exactly(tmp_path):
    kwargs = {"solver": "gda", "solver_kwargs": {"dual_update": "epoch"}, "epochs": 3}
    straight = make_engine(**kwargs)
    fit_quietly(straight)
    crashed = make_engine(tmp_path, save_every=3, **kwargs)
    crashed.callbacks.append(RaiseAt(5, RuntimeError("crash")))
    with pytest.raises(RuntimeError, match="crash"):
        fit_quietly(crashed)
    state = ckpt.read_trainer_state(tmp_path / "checkpoint-3")
    assert state["epoch_dual_steps"] == 3 and state["position"] == 6  # mid-epoch sums saved
    resumed = make_engine(tmp_path, **kwargs)
    fit_quietly(resumed, resume=True)
    assert resumed.resumed_from.name == "checkpoint-3"
    assert_same_run(straight, resumed)
    assert len(set(straight.history.series("retain/multiplier"))) == 3  # one λ per epoch


# -- failures -----------------------------------------------------------------------------------------
def test_non_finite_loss_keeps_the_last_good_checkpoint(tmp_path):
    calls = {"training": 0}

    def exploding_terms(model, forget, retain):
        terms = noisy_terms(model, forget, retain)
        if getattr(model, "module", model).training:
            calls["training"] += 1
            if calls["training"] > 8:  # step 4 (0-based) sees NaN
                return Terms(terms.objective * float("nan"), terms.constraints)
        return terms

    engine = make_engine(tmp_path, terms=exploding_terms, save_every=1, keep_last=1)
    with pytest.raises(
        NonFiniteError,
        match=r"non-finite forget objective .* at optimiser step 4.* last good checkpoint is "
        r".*checkpoint-4",
    ) as error:
        fit_quietly(engine)
    assert error.value.checkpoint.endswith("checkpoint-4")
    complete, incomplete = ckpt.list_checkpoints(tmp_path)
    assert names_of(complete) == ["checkpoint-4"] and incomplete == []
    fresh = make_engine()
    fresh.load_checkpoint(complete[0])
    assert all(torch.isfinite(p).all() for p in fresh.unwrapped_model.parameters())
    assert fresh.global_step == 4


def test_non_finite_parameters_are_never_checkpointed(tmp_path):
    engine = make_engine(tmp_path, max_steps=2)
    fit_quietly(engine)
    with torch.no_grad():
        engine.unwrapped_model.weight[1, 2] = float("inf")
    with pytest.raises(
        NonFiniteError, match=r"non-finite parameter weight \(inf\) at optimiser step 2"
    ):
        engine.save_checkpoint()
    complete, incomplete = ckpt.list_checkpoints(tmp_path)
    assert names_of(complete) == ["checkpoint-2"] and incomplete == []
    fresh = make_engine(max_steps=2)
    fresh.load_checkpoint(complete[0])
    assert torch.isfinite(fresh.unwrapped_model.weight).all()


def test_infeasibility_warning_reports_value_bound_and_multiplier():
    engine = make_engine(
        names=("retain",),
        solver="gda",
        solver_kwargs={"dual_lr": 1e-3},
        bounds={"retain": 0.05},  # far below any reachable cross-entropy
        infeasible_patience=3,
        multiplier_limit=None,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine.fit()
    messages = [
        str(w.message)
        for w in caught
        if w.category is ConstraintInfeasibleWarning and "consecutive" in str(w.message)
    ]
    assert len(messages) == 1  # once per constraint, not every step
    third = engine.history.records[2]
    value, lam = third.values["retain"], third.multipliers["retain"]
    assert value > 0.05 and lam > 0.5
    assert (
        f"constraint 'retain' has been violated for 3 consecutive steps after warm-up "
        f"(value {value:.4g} > bound 0.05, λ = {lam:.4g})"
    ) in messages[0]


# -- weights: tied tensors and PEFT adapters --------------------------------------------------------
class TiedClassifier(torch.nn.Module):
    """A classifier with a weight shared by two layers and a module registered twice."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.out = torch.nn.Linear(5, 3)
        self.aux = torch.nn.Linear(5, 3)
        self.aux.weight = self.out.weight  # tied parameter
        self.head = self.out  # the same module under a second name

    @property
    def weight(self):
        return self.out.weight

    @property
    def bias(self):
        return self.out.bias

    def forward(self, x):
        return self.head(x)


def test_tied_weights_are_stored_once_and_restored(tmp_path):
    engine = make_engine(tmp_path, model=TiedClassifier(), max_steps=2)
    fit_quietly(engine)
    weights = load_file(str(tmp_path / "checkpoint-2" / "model.safetensors"))
    assert sorted(weights) == ["aux.bias", "out.bias", "out.weight"]  # aliases stored once
    fresh = make_engine(model=TiedClassifier(), max_steps=2)
    fresh.load_checkpoint(tmp_path / "checkpoint-2")
    model = fresh.unwrapped_model
    assert model.head is model.out and model.aux.weight is model.out.weight
    for (n, p), (_, q) in zip(
        fresh.unwrapped_model.state_dict().items(), engine.unwrapped_model.state_dict().items()
    ):
        assert torch.equal(p, q), n


def test_peft_model_saves_only_adapter_weights(tmp_path, monkeypatch):
    calls = {}

    def get_state(model, state_dict=None, adapter_name="default"):
        return {k: v for k, v in state_dict.items() if "lora" in k}

    def set_state(model, state, adapter_name="default"):
        calls["set"] = sorted(state)
        model.load_state_dict(state, strict=False)

    fake = types.ModuleType("peft")
    fake.get_peft_model_state_dict = get_state
    fake.set_peft_model_state_dict = set_state
    monkeypatch.setitem(sys.modules, "peft", fake)

    class Adapted(torch.nn.Module):
        peft_config = {"default": "lora"}

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.base = torch.nn.Linear(5, 3)
            self.base.requires_grad_(False)
            self.lora_delta = torch.nn.Parameter(torch.zeros(3, 5))

        @property
        def weight(self):
            return self.base.weight + self.lora_delta

        @property
        def bias(self):
            return self.base.bias

        def forward(self, x):
            return x @ self.weight.t() + self.base.bias

    engine = make_engine(tmp_path, model=Adapted(), names=("retain", "weight_norm"), max_steps=2)
    fit_quietly(engine)
    path = tmp_path / "checkpoint-2"
    assert sorted(load_file(str(path / "model.safetensors"))) == ["lora_delta"]
    fresh = make_engine(model=Adapted(), names=("retain", "weight_norm"), max_steps=2)
    fresh.load_checkpoint(path)
    assert calls["set"] == ["lora_delta"]
    assert torch.equal(fresh.unwrapped_model.lora_delta, engine.unwrapped_model.lora_delta)
    assert not torch.equal(engine.unwrapped_model.lora_delta, torch.zeros(3, 5))
    plain = make_engine(names=("retain", "weight_norm"), max_steps=2)
    with pytest.raises(CheckpointError, match=r"optimizer.group0.size: saved 15, now 18"):
        plain.load_checkpoint(path)  # the run signature sees other trainable parameters first
    plain = make_engine(
        names=("retain", "weight_norm"), max_steps=2, resume_overrides=("optimizer.group0.size",)
    )
    with pytest.raises(CheckpointError, match="adapter weights but the model is not a PEFT model"):
        plain.load_checkpoint(path)
