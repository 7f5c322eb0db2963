"""compare_runs on synthetic runs logged to a local sqlite store: table, files, plots."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from constrained_unlearn.engine.history import History, StepRecord
from constrained_unlearn.tracking import MlflowRun
from constrained_unlearn.tracking.compare import (
    compare_runs,
    load_runs,
    markdown_table,
    pareto_front,
)
from constrained_unlearn.tracking.mlflow_run import log_reference_run
from constrained_unlearn.tracking.plots import (
    dual_figure,
    history_figure,
    pareto_figure,
    plot_dual,
    plot_pareto,
)

EXPERIMENT = "compare-test"
STEPS = 5
# (run name, method, solver, forget quality, model utility, ε param or None, final λ)
RUNS = [
    ("gd", "grad-diff", "penalty", 1e-6, 0.58, None, 1.0),
    ("npo", "npo", "penalty", 2e-3, 0.52, None, 1.0),
    ("pdu-gda", "pdu", "gda", 0.3, 0.55, 2.0, 7.0),
    ("pdu-eg", "pdu", "extragradient", 0.05, 0.50, 2.0, 4.0),
    # ends outside its constraint (the recipe's tag says so): it would dominate every other
    ("pdu-nupi", "pdu", "nupi", 0.9, 0.60, 2.0, 9.0),
]
INFEASIBLE = {"pdu-nupi"}


def _log(uri: str) -> dict[str, str]:
    ids = {}
    for name, method, solver, fq, mu, eps, lam_end in RUNS:
        tags = {"method": method}
        if name in INFEASIBLE:
            tags["constraint_satisfied"] = "false"
        with MlflowRun(EXPERIMENT, run_name=name, tracking_uri=uri, tags=tags) as run:
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
    # reference models: logged once per digest (a second call finds the first run)
    kw = {"experiment": EXPERIMENT, "tracking_uri": uri}
    ids["target"] = log_reference_run(
        "target", {"forget_quality": 1e-9, "model_utility": 0.62}, digest="t1", **kw
    )
    assert log_reference_run("target", {"forget_quality": 5.0}, digest="t1", **kw) == ids["target"]
    ids["retain"] = log_reference_run(
        "retain", {"forget_quality": 1.0, "model_utility": 0.61}, digest="r1", **kw
    )
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
    assert len(table) == 8
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
    # reference models first, then sorted by method and solver
    assert list(table["method"]) == [
        "retain", "target", "grad-diff", "npo", "pdu", "pdu", "pdu", "simnpo",
    ]  # fmt: skip
    assert list(table["reference"][:2]) == ["retain", "target"]
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
    # feasibility: the tag when present, else the final retain loss against ε
    assert rows["pdu-nupi"]["feasible"] is False
    assert rows["pdu-gda"]["feasible"] is True and rows["gd"]["feasible"] is True
    assert broken["feasible"] is None and rows["reference-target"]["feasible"] is None

    csv = pd.read_csv(result.files["csv"])
    assert list(csv["run_id"]) == list(table["run_id"])
    assert csv["forget_quality"].tolist()[:6] == pytest.approx([1.0, 1e-9, 1e-6, 2e-3, 0.05, 0.3])
    md = result.files["markdown"].read_text()
    assert "| pdu-gda |" in md and f"| {ids['pdu-gda'][:8]} |" in md
    assert md.count("\n| ") == 1 + 8  # header + one line per run
    assert "![pareto](pareto.png)" in md
    assert "1 run(s) end outside their constraint** (feasible = no): pdu-nupi" in md
    described = result.describe()
    assert str((tmp_path / "cmp").resolve()) in described and "comparison.md" in described


def test_plots_are_pngs(store, tmp_path):
    uri, _, _ = store
    result = compare_runs(EXPERIMENT, tracking_uri=uri, out_dir=tmp_path)
    assert set(result.files) == {"markdown", "csv", "pareto", "dual", "forget_curves"}
    assert result.skipped == {}
    for name in ("pareto", "dual", "forget_curves"):
        data = result.files[name].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # only the primal-dual runs are on the dual plot
    assert {r.run_name for r in result.runs if r.is_primal_dual} == {
        "pdu-gda",
        "pdu-eg",
        "pdu-nupi",
    }
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
    assert sorted(pdu.table["run_name"]) == ["pdu-eg", "pdu-gda", "pdu-nupi"]
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


def test_pareto_plot_hollow_infeasible_reference_points_and_legend(store, tmp_path):
    uri, _, _ = store
    table = compare_runs(EXPERIMENT, tracking_uri=uri, out_dir=tmp_path, plots=False).table
    fig = pareto_figure(table)
    assert fig is not None
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    # one legend entry per method/solver, the reference models, the front, the hollow key
    assert labels == [
        "grad-diff/penalty", "npo/penalty", "pdu/extragradient", "pdu/gda", "pdu/nupi",
        "retain model", "target model", "Pareto front", "hollow: infeasible",
    ]  # fmt: skip
    # the infeasible run is hollow (no face colour), the feasible ones filled
    by_point = {}
    for collection in ax.collections:
        for x, y in collection.get_offsets():
            by_point.setdefault((round(float(x), 3), float(y)), collection)
    assert len(by_point[(0.6, 0.9)].get_facecolor()) == 0
    assert len(by_point[(0.55, 0.3)].get_facecolor()) == 1
    # the front: feasible runs only (pdu-nupi and the retain model would dominate them all)
    (front,) = [line for line in ax.get_lines() if line.get_label() == "Pareto front"]
    assert list(zip(front.get_xdata(), front.get_ydata(), strict=True)) == [
        (0.55, 0.3),
        (0.58, 1e-6),
    ]
    texts = {t.get_text() for t in ax.texts}
    assert {"target", "retain"} <= texts


def test_epsilon_is_readable_on_a_log_scale(store, tmp_path):
    uri, _, _ = store
    runs = compare_runs(EXPERIMENT, tracking_uri=uri, out_dir=tmp_path, plots=False).runs
    fig = dual_figure(runs)
    assert fig is not None
    top, bottom = fig.axes
    assert bottom.get_yscale() == "log"
    assert "ε = 2" in {t.get_text() for t in bottom.texts}
    # one run's training plot: a loss of 2 against ε = 0.03 on a log axis, ε written out
    history = History(
        [
            StepRecord(s, 0, 5.0 - s, {"retain": 2.0 / (s + 1)}, {"retain": 2.0 / (s + 1) - 0.03},
                       {"retain": 20.0 + s}, 1e-3, 1.0, True)
            for s in range(4)
        ]
    )  # fmt: skip
    fig = history_figure(history, {"retain": 0.03})
    objective, constraint, multiplier = fig.axes
    assert constraint.get_yscale() == "log" and objective.get_yscale() == "linear"
    assert "ε (retain) = 0.03" in {t.get_text() for t in constraint.texts}
    (eps_line,) = [line for line in constraint.get_lines() if line.get_linestyle() == "--"]
    assert set(eps_line.get_ydata()) == {0.03}
    from constrained_unlearn.tracking import run_plot

    path = run_plot.plot_history(history, {"retain": 0.03}, tmp_path / "training.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
