"""Checkpoint integrity (#13.3): sha256 per file in COMPLETE, verified on load; a damaged newest
checkpoint falls back to the newest intact one; a corrupt history.json is a CheckpointError."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from toy_problems import classifier_data, classifier_terms, linear_model

import constrained_unlearn.engine.checkpoint as ckpt
from constrained_unlearn.engine import (
    CheckpointDamagedError,
    CheckpointError,
    CheckpointWarning,
    EngineConfig,
    PairedData,
    UnlearningEngine,
)
from constrained_unlearn.problem import ConstraintSpec


def make_engine(checkpoint_dir=None, **config) -> UnlearningEngine:
    forget, retain = classifier_data()
    settings = {"epochs": 1, "progress": False, "cpu": True, "infeasible_patience": None}
    return UnlearningEngine(
        linear_model(),
        classifier_terms,
        PairedData(forget, retain, batch_size=8, seed=3),
        constraints=[ConstraintSpec("retain", bound=0.9)],
        solver_kwargs={"multiplier_init": 1.0, "dual_lr": 0.5},
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05),
        config=EngineConfig(checkpoint_dir=checkpoint_dir, **{**settings, **config}),
    )


def fit(engine, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(infeasible|outside constraint).*")
        return engine.fit(**kwargs)


def flip_byte(path, offset=-5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def run(tmp_path):
    """4 steps, a checkpoint after each (checkpoint-1 … checkpoint-4)."""
    engine = make_engine(tmp_path, save_every=1)
    fit(engine)
    return tmp_path, engine


def test_complete_marker_holds_the_sha256_of_every_file(run):
    root, _ = run
    path = root / "checkpoint-4"
    marker = json.loads((path / "COMPLETE").read_text())
    files = sorted(p.name for p in path.iterdir() if p.name != "COMPLETE")
    assert sorted(marker["sha256"]) == files
    for name, digest in marker["sha256"].items():
        assert digest == ckpt.file_sha256(path / name)
    ckpt.verify_checkpoint(path)  # intact


def test_a_flipped_byte_in_the_weights_is_refused(run):
    root, _ = run
    flip_byte(root / "checkpoint-4" / "model.safetensors")
    fresh = make_engine()
    before = [p.detach().clone() for p in fresh.unwrapped_model.parameters()]
    with pytest.raises(
        CheckpointDamagedError, match=r"model.safetensors does not match its sha256"
    ):
        fresh.load_checkpoint(root / "checkpoint-4")
    for p, q in zip(fresh.unwrapped_model.parameters(), before):  # nothing applied
        assert torch.equal(p, q)


def test_resume_falls_back_to_the_newest_intact_checkpoint_naming_both(run):
    root, finished = run
    flip_byte(root / "checkpoint-4" / "model.safetensors")
    flip_byte(root / "checkpoint-3" / "dual.pt")
    assert ckpt.latest_checkpoint(root, report=False) == root / "checkpoint-2"
    resumed = make_engine(root, save_every=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(resumed, resume=True)
    reports = [str(w.message) for w in caught if w.category is CheckpointWarning]
    assert any(
        "skipping damaged checkpoint" in r and "checkpoint-4" in r and r.endswith("checkpoint-2")
        for r in reports
    )
    assert any("checkpoint-3" in r and "dual.pt" in r for r in reports)
    assert resumed.resumed_from.name == "checkpoint-2"
    assert resumed.history.series("retain/multiplier") == finished.history.series(
        "retain/multiplier"
    )  # the same run, continued from step 2
    for p, q in zip(resumed.unwrapped_model.parameters(), finished.unwrapped_model.parameters()):
        assert torch.equal(p, q)


def test_no_intact_checkpoint_starts_fresh_with_a_warning(tmp_path):
    fit(make_engine(tmp_path, max_steps=1))
    flip_byte(tmp_path / "checkpoint-1" / "optimizer.pt")
    resumed = make_engine(tmp_path, max_steps=1)
    with pytest.warns(CheckpointWarning, match="no intact checkpoint remains"):
        fit(resumed, resume=True)
    assert resumed.resumed_from is None and len(resumed.history) == 1


def rehash(path) -> None:
    marker = json.loads((path / "COMPLETE").read_text())
    marker["sha256"] = {name: ckpt.file_sha256(path / name) for name in marker["sha256"]}
    (path / "COMPLETE").write_text(json.dumps(marker))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"step": 1}', r"history.json must hold a list of step records, got dict"),
        ("[[1, 2]]", r"record 0 of .*history.json is not a step record"),
        ('[{"step": "x"}]', r"record 0 of .*history.json is not a step record"),
    ],
)
def test_a_corrupt_history_is_a_checkpoint_error(run, content, message):
    root, _ = run
    path = root / "checkpoint-4"
    (path / "history.json").write_text(content)
    with pytest.raises(CheckpointDamagedError, match="history.json does not match its sha256"):
        make_engine().load_checkpoint(path)
    rehash(path)  # a writer that stored bad content itself: the parser still refuses it
    with pytest.raises(CheckpointError, match=message):
        make_engine().load_checkpoint(path)


def test_a_wrongly_typed_record_is_a_checkpoint_error(run):
    root, _ = run
    path = root / "checkpoint-4"
    records = json.loads((path / "history.json").read_text())
    records[1]["values"] = "retain"
    (path / "history.json").write_text(json.dumps(records))
    rehash(path)
    with pytest.raises(CheckpointError, match=r"record 1 of .*history.json: 'values' is 'retain'"):
        make_engine().load_checkpoint(path)


def test_a_marker_without_checksums_is_reported(run):
    root, _ = run
    (root / "checkpoint-4" / "COMPLETE").write_text("2026-01-01T00:00:00\n")  # format 1 marker
    with pytest.raises(
        CheckpointDamagedError, match=r"holds no checksums .*\(format 1; this one reads format 2\)"
    ):
        make_engine().load_checkpoint(root / "checkpoint-4")
