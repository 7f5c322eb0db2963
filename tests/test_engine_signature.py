"""The run signature (#13.2): a resume with another lr, ε, dual step, solver, method, data
content, max_length or batch size is refused with every difference in one message; a deliberate
change goes through EngineConfig.resume_overrides and is recorded."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
import torch
from toy_problems import classifier_data, classifier_terms, linear_model

from constrained_unlearn.engine import CheckpointError, EngineConfig, PairedData, UnlearningEngine
from constrained_unlearn.engine.signature import (
    dataset_fingerprint,
    merge_signatures,
    split_overrides,
)
from constrained_unlearn.problem import ConstraintSpec


class Truncated(torch.utils.data.Dataset):
    """Classifier items whose features are cut at ``max_length`` and zero-padded (like tokens)."""

    def __init__(self, dataset, max_length: int) -> None:
        self.dataset, self.max_length = dataset, max_length

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        x, y = self.dataset[i]
        out = torch.zeros_like(x)
        out[: self.max_length] = x[: self.max_length]
        return out, y


def make_engine(
    checkpoint_dir,
    *,
    lr=0.05,
    epsilon=0.9,
    dual_lr=0.3,
    solver="gda",
    method="pdu",
    batch_size=8,
    max_length=5,
    flip_label=False,
    max_steps=2,
    **config,
) -> UnlearningEngine:
    forget, retain = classifier_data()
    if flip_label:  # other data of the same size
        x, y = retain.tensors
        y = y.clone()
        y[0] = (y[0] + 1) % 3
        retain = torch.utils.data.TensorDataset(x, y)
    return UnlearningEngine(
        linear_model(),
        classifier_terms,
        PairedData(Truncated(forget, max_length), retain, batch_size=batch_size, seed=3),
        constraints=[ConstraintSpec("retain", bound=epsilon)],
        solver=solver,
        solver_kwargs={"multiplier_init": 1.0, "dual_lr": dual_lr},
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=0.01),
        config=EngineConfig(
            max_steps=max_steps,
            progress=False,
            cpu=True,
            infeasible_patience=None,
            checkpoint_dir=checkpoint_dir,
            **config,
        ),
        run_signature={"method.name": method, "data.max_length": max_length},
    )


def fit(engine, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return engine.fit(**kwargs)


@pytest.fixture
def saved(tmp_path):
    fit(make_engine(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("change", "lines"),
    [
        ({"lr": 0.01}, ["optimizer.group0.lr: saved 0.05, now 0.01"]),
        ({"epsilon": 0.5}, ["constraint.retain.bound: saved 0.9, now 0.5"]),
        ({"dual_lr": 3.0}, ["solver.dual_lr: saved 0.3, now 3.0"]),
        ({"solver": "extragradient"}, ["solver: saved 'gda', now 'extragradient'"]),
        ({"method": "graddiff"}, ["method.name: saved 'pdu', now 'graddiff'"]),
        ({"flip_label": True}, ["data.retain_sha256: saved '"]),
        ({"max_length": 4}, ["data.max_length: saved 5, now 4", "data.forget_sha256: saved '"]),
        ({"batch_size": 4}, ["data.batch_size: saved 8, now 4"]),
    ],
    ids=["lr", "epsilon", "dual_lr", "solver", "method", "data", "max_length", "batch_size"],
)
def test_a_changed_run_is_refused_naming_the_key_old_and_new(saved, change, lines):
    engine = make_engine(saved, **change)
    with pytest.raises(CheckpointError, match="the run differs from the checkpoint's") as error:
        fit(engine, resume=True)
    message = str(error.value)
    for line in lines:
        assert line in message
    assert "EngineConfig(resume_overrides=(" in message  # how to allow it
    assert engine.global_step == 0 and len(engine.history) == 0  # nothing applied


def test_every_difference_in_one_error(saved):
    with pytest.raises(CheckpointError) as error:
        fit(make_engine(saved, lr=0.01, epsilon=0.5, method="npo"), resume=True)
    message = str(error.value)
    assert "in 3 setting(s)" in message
    for key in ("optimizer.group0.lr", "constraint.retain.bound", "method.name"):
        assert f"  {key}: saved " in message
    assert "resume_overrides=('constraint.retain.bound', 'method.name', 'optimizer.group0.lr')" in (
        message
    )


def test_the_same_run_resumes_and_the_run_length_is_not_part_of_the_signature(saved):
    engine = make_engine(saved, max_steps=6, epochs=2)  # a longer run: 2 + one more epoch of 4
    with pytest.warns(Warning, match="the learning-rate schedule continues with the new length"):
        engine.fit(resume=True)
    assert engine.resumed_from.name == "checkpoint-2" and len(engine.history) == 6


def test_an_override_is_accepted_logged_and_recorded(saved, caplog):
    engine = make_engine(saved, lr=0.01, resume_overrides=("optimizer.group0.lr",))
    with caplog.at_level(logging.WARNING, logger="constrained_unlearn.engine.checkpoint"):
        fit(engine, resume=True)
    assert engine.resumed_from.name == "checkpoint-2"
    assert engine.resume_overridden == {"optimizer.group0.lr": {"saved": 0.05, "now": 0.01}}
    assert any(
        "overrides optimizer.group0.lr: saved 0.05, now 0.01" in r.message for r in caplog.records
    )
    state = json.loads((saved / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["resume_overridden"] == {}  # the old checkpoint is untouched
    assert state["signature"]["optimizer.group0.lr"] == 0.05
    # a later checkpoint of the resumed run carries the record and the new signature
    engine.save_checkpoint(saved / "later")
    later = json.loads((saved / "later" / "checkpoint-2" / "trainer_state.json").read_text())
    assert later["resume_overridden"] == {"optimizer.group0.lr": {"saved": 0.05, "now": 0.01}}
    assert later["signature"]["optimizer.group0.lr"] == 0.01


def test_the_checkpoint_stores_the_engine_part_and_the_callers_part(saved):
    signature = json.loads((saved / "checkpoint-2" / "trainer_state.json").read_text())["signature"]
    expected = {
        "solver": "gda",
        "solver.multiplier_init": 1.0,
        "solver.dual_lr": 0.3,
        "solver.warmup_steps": 0,
        "solver.dual_update": "step",
        "constraint.retain.bound": 0.9,
        "constraint.retain.slack": 0.1,
        "optimizer.type": "AdamW",
        "optimizer.group0.lr": 0.05,
        "optimizer.group0.betas": [0.9, 0.999],
        "optimizer.group0.weight_decay": 0.01,
        "engine.gradient_accumulation_steps": 1,
        "engine.max_grad_norm": 1.0,
        "engine.seed": 0,
        "world_size": 1,
        "data.forget_size": 32,
        "data.retain_size": 32,
        "data.batch_size": 8,
        "data.shuffle": True,
        "data.seed": 3,
        "method.name": "pdu",
        "data.max_length": 5,
    }
    assert {k: signature[k] for k in expected} == expected
    assert len(signature["data.forget_sha256"]) == 64


def test_fingerprint_sees_one_changed_value_and_not_a_copy():
    forget, _ = classifier_data()
    x, y = forget.tensors
    same = torch.utils.data.TensorDataset(x.clone(), y.clone())
    assert dataset_fingerprint(forget) == dataset_fingerprint(same)
    z = x.clone()
    z[3, 2] += 1e-6
    assert dataset_fingerprint(torch.utils.data.TensorDataset(z, y)) != dataset_fingerprint(forget)
    items = [{"input_ids": torch.tensor([1, 2, 3]), "labels": torch.tensor([-100, 2, 3])}]
    other = [{"input_ids": torch.tensor([1, 2, 3]), "labels": torch.tensor([-100, -100, 3])}]
    assert dataset_fingerprint(items) != dataset_fingerprint(other)
    assert dataset_fingerprint(items) == dataset_fingerprint([dict(items[0])])


def test_world_size_is_never_overridable_and_caller_keys_may_not_shadow_the_engine():
    refused, accepted = split_overrides(
        {"world_size": (2, 1), "optimizer.group0.lr": (0.1, 0.2)},
        ("world_size", "optimizer.group0.lr"),
    )
    assert list(refused) == ["world_size"] and list(accepted) == ["optimizer.group0.lr"]
    with pytest.raises(ValueError, match=r"run_signature keys \['solver'\] are the engine's own"):
        merge_signatures({"solver": "gda"}, {"solver": "nupi"})
