"""The demo's tracking-facing pieces, without running the demo: the default experiment shared
with ``compare``, the cached-evaluation check, the row label and the closing line."""

from __future__ import annotations

import json
from types import SimpleNamespace

from constrained_unlearn.recipes.config import load_config
from constrained_unlearn.recipes.demo import cached_evaluation, run_label, say_where
from constrained_unlearn.tracking.compare import compare_runs
from constrained_unlearn.tracking.mlflow_run import MlflowRun, mlflow_ui_command
from constrained_unlearn.tracking.preflight import DEFAULT_EXPERIMENT


def test_demo_and_compare_share_the_default_experiment():
    import inspect

    cfg = load_config(None, [])
    assert cfg.tracking.experiment == DEFAULT_EXPERIMENT == "constrained-unlearn"
    assert inspect.signature(compare_runs).parameters["experiment"].default == DEFAULT_EXPERIMENT
    assert inspect.signature(MlflowRun).parameters["experiment"].default == DEFAULT_EXPERIMENT


class _Evaluator:
    def __init__(self, key: str) -> None:
        self.key = key

    def provenance(self) -> dict[str, str]:
        return {"cache_key": self.key}


def test_cached_evaluation_follows_the_cache_key(tmp_path):
    from constrained_unlearn.evaluation.report import report_paths

    assert cached_evaluation(_Evaluator("k1"), tmp_path, "TOFU") is False  # no report yet
    path, _ = report_paths(tmp_path, "TOFU")
    path.write_text(
        json.dumps({"model_utility": {"agg_value": 0.5}, "provenance": {"cache_key": "k1"}})
    )
    assert cached_evaluation(_Evaluator("k1"), tmp_path, "TOFU") is True
    assert cached_evaluation(_Evaluator("k2"), tmp_path, "TOFU") is False  # other weights
    path.write_text("{not json")
    assert cached_evaluation(_Evaluator("k1"), tmp_path, "TOFU") is False


def test_row_label_and_closing_line():
    cfg = load_config(None, ["method.name=pdu", "method.solver=nupi"])
    assert run_label(cfg) == "pdu (nupi)"
    assert run_label(cfg, SimpleNamespace(solver="gda")) == "pdu (gda)"  # what ran wins
    assert say_where("abc123", "sqlite:///mlflow.db") == (
        "MLflow run abc123; see it with: mlflow ui --backend-store-uri sqlite:///mlflow.db "
        "--host 127.0.0.1 (compare runs: constrained-unlearn compare)"
    )
    assert mlflow_ui_command("http://127.0.0.1:5000") == "open http://127.0.0.1:5000 in a browser"
    assert say_where(None, None) == "tracking was off: no MLflow run"
