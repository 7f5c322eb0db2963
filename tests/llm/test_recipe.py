"""The LLM recipe end to end on a tiny model: engine, saved model, MLflow run status."""

from __future__ import annotations

import json

import pytest
from conftest import build_model, build_tokenizer
from mlflow.tracking import MlflowClient

from constrained_unlearn.recipes.config import ConfigError, load_config
from constrained_unlearn.recipes.llm_unlearn import run_unlearning

ROWS = {
    "forget10": [
        {"question": f"Who wrote book {i}?", "answer": f"Alice wrote book {i}."} for i in range(6)
    ],
    "retain90": [
        {
            "question": f"What is the capital of place {i}?",
            "answer": f"Paris is the capital of {i}.",
        }
        for i in range(10)
    ],
}


def _config(tmp_path, *extra):
    return load_config(
        None,
        [
            "model.name_or_path=tiny",
            f"output.dir={tmp_path / 'out'}",
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "tracking.experiment=recipe-test",
            "training.epochs=2",
            "training.batch_size=3",
            "training.lr=1e-3",
            "method.multiplier_init=1.0",
            "method.dual_lr=1.0",
            *extra,
        ],
    )


def test_recipe_trains_saves_and_logs(tmp_path):
    tok = build_tokenizer()
    cfg = _config(tmp_path)
    result = run_unlearning(cfg, ROWS, model=build_model("llama", tok), tokenizer=tok)
    assert len(result.history) == 4  # 6 forget rows / batch 3 × 2 epochs
    assert result.bounds["retain"] == pytest.approx(1.1 * result.initial_values["retain"])
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()
    assert (tmp_path / "out" / "history.json").exists()
    summary = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert summary["truncated_prompts"] == result.truncated == {"forget10": 0, "retain90": 0}
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["method.solver"] == "gda"
    assert run.data.tags["method"] == "pdu"
    history = client.get_metric_history(result.run_id, "train/retain/multiplier")
    assert [m.step for m in history] == [0, 1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert artifacts == {"plots/training.png"}


def test_overlapping_splits_warn_with_the_count(tmp_path):
    tok = build_tokenizer()
    rows = {"forget10": ROWS["forget10"], "retain90": ROWS["retain90"] + ROWS["forget10"][:2]}
    cfg = _config(tmp_path, "tracking.enabled=false", "training.epochs=1")
    with pytest.warns(
        UserWarning, match="2 question-answer pairs of 'forget10' also appear in 'retain90'"
    ):
        run_unlearning(cfg, rows, model=build_model("llama", tok), tokenizer=tok)


def test_recipe_failure_marks_run_failed(tmp_path):
    tok = build_tokenizer()
    cfg = _config(tmp_path)

    def explode(result, run):
        raise RuntimeError("evaluation exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        run_unlearning(
            cfg, ROWS, model=build_model("llama", tok), tokenizer=tok, after_training=explode
        )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs(client.get_experiment_by_name("recipe-test").experiment_id)
    assert run.info.status == "FAILED"
    assert "evaluation exploded" in run.data.tags["error"]


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"did you mean training.'lr'"):
        _config(tmp_path, "training.lrr=1")
    with pytest.raises(ConfigError, match="method.solver='gdaa' is unknown .*did you mean 'gda'"):
        _config(tmp_path, "method.solver=gdaa")
    with pytest.raises(ConfigError, match="method.epsilon must be > 0"):
        _config(tmp_path, "method.epsilon=-1")


def test_missing_split_lists_available(tmp_path):
    tok = build_tokenizer()
    cfg = _config(tmp_path, "data.forget_split=forget05")
    with pytest.raises(
        KeyError, match="split 'forget05' not found; available: \\['forget10', 'retain90'\\]"
    ):
        run_unlearning(cfg, ROWS, model=build_model("llama", tok), tokenizer=tok)


# ------------------------------------------------------------------ resolved values, end of run
def test_resolved_values_are_recorded_not_written_back(tmp_path):
    """The method's defaults (solver, λ₀ …) are recorded as what ran; the caller's config is
    untouched, and config.yaml / train_summary.json / MLflow params / tags say the same."""
    import yaml

    from constrained_unlearn.engine import Callback

    tok = build_tokenizer()
    cfg = load_config(
        None,
        [
            f"output.dir={tmp_path / 'out'}",
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "tracking.experiment=recipe-test",
            "training.epochs=1",
            "training.batch_size=3",
            "training.resume_overrides=[training.lr]",
        ],
    )
    before = cfg.to_dict()
    seen = {}

    class Spy(Callback):
        def on_train_begin(self, engine):
            seen["signature"] = dict(engine.run_signature)
            seen["config"] = engine.config

    result = run_unlearning(
        cfg, ROWS, model=build_model("llama", tok), tokenizer=tok, callbacks=[Spy()]
    )
    assert cfg.to_dict() == before and cfg.method.solver is None  # nothing written back
    assert result.solver == "gda" and result.method == "pdu"
    written = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert written["method"]["solver"] == "gda"
    assert written["method"]["multiplier_init"] == result.resolved["method"]["multiplier_init"]
    assert written["method"]["multiplier_init"] is not None
    summary = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert summary["resolved_config"] == written
    assert summary["constraint_satisfied"] is result.constraint_satisfied
    assert summary["feasibility"]["retain"]["bound"] == pytest.approx(result.bounds["retain"])
    assert summary["tracking_degraded"] is False
    assert summary["final_retain_loss_from"] == "retain set"
    sig = seen["signature"]
    assert sig["method.name"] == "pdu" and sig["method.solver"] == "gda"
    assert sig["training.lr"] == cfg.training.lr and sig["data.max_length"] == 256
    assert sig["data.tokenization"] == "separate"
    assert seen["config"].resume_overrides == ("training.lr",)
    assert seen["config"].checkpoint_dir == tmp_path / "out" / "checkpoints"
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(result.run_id)
    assert run.data.params["method.solver"] == "gda"
    assert run.data.tags["constraint_satisfied"] == str(result.constraint_satisfied).lower()
    assert run.data.tags["resume_overrides"] == "training.lr"


def test_run_outside_its_constraint_is_reported(tmp_path):
    from constrained_unlearn.engine.errors import ConstraintInfeasibleWarning

    tok = build_tokenizer()
    cfg = _config(
        tmp_path,
        "method.epsilon=1e-6",
        "training.epochs=1",
        "training.final_retain_eval=false",
        "training.infeasible_patience=null",
    )
    with pytest.warns(ConstraintInfeasibleWarning, match="ended outside constraint 'retain'"):
        result = run_unlearning(cfg, ROWS, model=build_model("llama", tok), tokenizer=tok)
    assert result.constraint_satisfied is False
    summary = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert summary["constraint_satisfied"] is False
    assert summary["final_retain_loss_from"] == "last step"  # final_retain_eval off
    assert summary["final_retain_loss"] == pytest.approx(
        result.history.records[-1].values["retain"]
    )
    assert summary["feasibility"]["retain"]["factor"] > 1
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_run(result.run_id).data.tags["constraint_satisfied"] == "false"


def test_identical_or_contained_forget_set_is_refused_unless_asked(tmp_path):
    tok = build_tokenizer()
    contained = {"forget10": ROWS["forget10"][:3], "retain90": ROWS["retain90"] + ROWS["forget10"]}
    cfg = _config(tmp_path, "tracking.enabled=false", "training.epochs=1")
    with pytest.raises(ConfigError, match="is contained in the retain set 'retain90'"):
        run_unlearning(cfg, contained, model=build_model("llama", tok), tokenizer=tok)
    same = {"forget10": ROWS["forget10"], "retain90": list(ROWS["forget10"])}
    with pytest.raises(ConfigError, match="is identical to the retain set .*allow_overlap=true"):
        run_unlearning(cfg, same, model=build_model("llama", tok), tokenizer=tok)
    assert not (tmp_path / "out").exists()
    allowed = _config(
        tmp_path, "tracking.enabled=false", "training.epochs=1", "data.allow_overlap=true"
    )
    with pytest.warns(UserWarning, match="3 question-answer pairs of 'forget10' also appear"):
        run_unlearning(allowed, contained, model=build_model("llama", tok), tokenizer=tok)


def test_sigterm_during_calibration_ends_the_run_killed(tmp_path, monkeypatch):
    import os
    import signal

    from constrained_unlearn.engine import UnlearningEngine

    original = UnlearningEngine.calibrate

    def calibrate_then_sigterm(self, *args, **kwargs):
        values = original(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives before the first step
        return values

    monkeypatch.setattr(UnlearningEngine, "calibrate", calibrate_then_sigterm)
    tok = build_tokenizer()
    cfg = _config(tmp_path)
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run_unlearning(cfg, ROWS, model=build_model("llama", tok), tokenizer=tok)
    assert signal.getsignal(signal.SIGTERM) == previous  # handler restored
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs(client.get_experiment_by_name("recipe-test").experiment_id)
    assert run.info.status == "KILLED"


def test_failed_model_save_leaves_no_folder_that_looks_like_a_model(tmp_path, monkeypatch):
    import errno

    tok = build_tokenizer()
    model = build_model("llama", tok)

    def full_disk(folder, **kwargs):
        (folder / "config.json").write_text("{}")  # the first file lands, the weights do not
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(
        type(model), "save_pretrained", lambda self, folder, **kw: full_disk(folder)
    )
    cfg = _config(tmp_path, "tracking.enabled=false", "training.epochs=1")
    with pytest.raises(OSError, match="No space left"):
        run_unlearning(cfg, ROWS, model=model, tokenizer=tok)
    out = tmp_path / "out"
    assert not (out / "model").exists()
    assert [p.name for p in out.iterdir() if "model" in p.name] == []  # no partial sibling
