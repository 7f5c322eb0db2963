"""compare_runs on synthetic runs logged to a local sqlite store: table, files, plots."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from constrained_unlearn.tracking import MlflowRun
from constrained_unlearn.tracking.compare import (
    compare_runs,
    load_runs,
    markdown_table,
    pareto_front,
)
from constrained_unlearn.tracking.plots import plot_dual, plot_pareto

EXPERIMENT = "compare-test"
STEPS = 5
# (run name, method, solver, forget quality, model utility, ε param or None, final λ)
RUNS = [
    ("gd", "grad-diff", "penalty", 1e-6, 0.58, None, 1.0),
    ("npo", "npo", "penalty", 2e-3, 0.52, None, 1.0),
    ("pdu-gda", "pdu", "gda", 0.3, 0.55, 2.0, 7.0),
    ("pdu-eg", "pdu", "extragradient", 0.05, 0.50, 2.0, 4.0),
]


def _log(uri: str) -> dict[str, str]:
    ids = {}
    for name, method, solver, fq, mu, eps, lam_end in RUNS:
        with MlflowRun(EXPERIMENT, run_name=name, tracking_uri=uri, tags={"method": method}) as run:
            run.log_params({"method": {"name": method, "solver": solver}})
            bound = 2.0 if eps is None else eps
            if eps is not None:
                run.log_params({"problem.bound.retain": eps})
            for step in range(STEPS):
                value = bound + 0.5 - 0.15 * step  # retain loss comes down through ε
                lam = 1.0 if solver == "penalty" else 1.0 + (lam_end - 1.0) * step / (STEPS - 1)
                run.log_metrics(
                    {
                        "train/objective": 10.0 - step,
                        "train/forget_nll": 2.0 + 0.5 * step,
                        "train/retain/value": value,
                        "train/retain/violation": value - bound,
                        "train/retain/multiplier": lam,
                    },
                    step=step,
                )
            run.log_metrics(
                {
                    "eval/forget_quality": fq,
                    "eval/model_utility": mu,
                    "eval/forget_Q_A_ROUGE": 0.1 + mu / 10,
                    "eval/forget_truth_ratio": 0.6,
                }
            )
            ids[name] = run.run_id
    with pytest.raises(RuntimeError):
        with MlflowRun(EXPERIMENT, run_name="broken", tracking_uri=uri) as run:
            run.log_params({"method": {"name": "simnpo", "solver": "penalty"}})
            raise RuntimeError("diverged")
    ids["broken"] = run.run_id
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare_store")
    uri = f"sqlite:///{root / 'runs.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # artifacts of a sqlite store go to ./mlruns
        ids = _log(uri)
        yield uri, ids, root


def test_table_values(store, tmp_path):
    uri, ids, _ = store
    result = compare_runs(EXPERIMENT, tracking_uri=uri, out_dir=tmp_path / "cmp")
    table = result.table
    assert len(table) == 5
    assert list(table.columns[:8]) == [
        "run_name",
        "run_id",
        "status",
        "method",
        "solver",
        "forget_quality",
        "model_utility",
        "forget_rouge_l",
    ]
    assert "forget_truth_ratio" in table.columns and "forget_Q_A_ROUGE" not in table.columns
    # sorted by method, then solver
    assert list(table["method"]) == ["grad-diff", "npo", "pdu", "pdu", "simnpo"]
    rows = {row["run_name"]: row for _, row in table.iterrows()}
    gda = rows["pdu-gda"]
    assert gda["solver"] == "gda" and gda["status"] == "FINISHED"
    assert gda["run_id"] == ids["pdu-gda"]
    assert gda["epsilon"] == 2.0  # from the param problem.bound.retain
    assert gda["retain_loss"] == pytest.approx(2.0 + 0.5 - 0.15 * 4)
    assert bool(gda["retain_ok"]) is True
    assert gda["multiplier"] == pytest.approx(7.0)
    assert gda["steps"] == STEPS
    assert gda["forget_quality"] == pytest.approx(0.3)
    assert gda["forget_rouge_l"] == pytest.approx(0.1 + 0.055)
    # ε derived from value − violation when no param says it
    assert rows["gd"]["epsilon"] == pytest.approx(2.0)
    broken = rows["broken"]
    assert broken["status"] == "FAILED" and broken["steps"] == 0
    assert math.isnan(broken["forget_quality"]) and broken["retain_ok"] is None

    csv = pd.read_csv(result.files["csv"])
    assert list(csv["run_id"]) == list(table["run_id"])
    assert csv["forget_quality"].tolist()[:4] == pytest.approx([1e-6, 2e-3, 0.05, 0.3])
    md = result.files["markdown"].read_text()
    assert "| pdu-gda |" in md and f"| {ids['pdu-gda'][:8]} |" in md
    assert md.count("\n| ") == 1 + 5  # header + one line per run
    assert "![pareto](pareto.png)" in md


def test_plots_are_pngs(store, tmp_path):
    uri, _, _ = store
    result = compare_runs(EXPERIMENT, tracking_uri=uri, out_dir=tmp_path)
    assert set(result.files) == {"markdown", "csv", "pareto", "dual", "forget_curves"}
    assert result.skipped == {}
    for name in ("pareto", "dual", "forget_curves"):
        data = result.files[name].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # only the primal-dual runs are on the dual plot
    assert {r.run_name for r in result.runs if r.is_primal_dual} == {"pdu-gda", "pdu-eg"}
    penalty_only = [r for r in result.runs if r.solver == "penalty"]
    assert plot_dual(penalty_only, tmp_path / "none.png") is None
    assert plot_pareto(result.table.iloc[0:0], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_filter_and_errors(store, tmp_path):
    uri, _, _ = store
    pdu = compare_runs(
        EXPERIMENT,
        filter_string="params.`method.name` = 'pdu'",
        tracking_uri=uri,
        out_dir=tmp_path,
        plots=False,
    )
    assert sorted(pdu.table["run_name"]) == ["pdu-eg", "pdu-gda"]
    assert "pareto" not in pdu.files
    with pytest.raises(ValueError, match="no run"):
        compare_runs(
            EXPERIMENT,
            filter_string="params.`method.name` = 'rmu'",
            tracking_uri=uri,
            out_dir=tmp_path,
        )
    with pytest.raises(ValueError, match="not found.*compare-test"):
        load_runs("no-such-experiment", tracking_uri=uri)


def test_pareto_front_by_hand():
    # (utility, quality): c dominates a; b, c and e trade off; d is dominated by c; NaN ignored
    points = [(0.1, 0.1), (0.9, 0.01), (0.5, 0.5), (0.4, 0.4), (0.2, 0.9), (float("nan"), 1.0)]
    assert pareto_front(points) == [4, 2, 1]
    assert pareto_front([(1.0, 1.0), (1.0, 1.0)]) == [0, 1]  # ties do not dominate
    assert pareto_front([]) == []


def test_markdown_table_formats():
    table = pd.DataFrame(
        [{"run_name": "a|b", "run_id": "0123456789abcdef", "forget_quality": 1.234e-7, "ok": True}]
    )
    text = markdown_table(table)
    assert text.splitlines()[0] == "| run_name | run_id | forget_quality | ok |"
    assert "| a\\|b | 01234567 | 1.23e-07 | yes |" in text
