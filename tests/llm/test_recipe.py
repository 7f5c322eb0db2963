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
