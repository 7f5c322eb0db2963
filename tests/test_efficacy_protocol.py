"""The efficacy protocol (benchmarks/efficacy/): statistics, arms, search spaces, the selection
rule, aggregation, and one quick end-to-end run on the tiny presets so the script cannot rot."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "efficacy"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import eps_sweep  # noqa: E402
import protocol  # noqa: E402
import spaces  # noqa: E402
import stats  # noqa: E402

from constrained_unlearn.methods import METHODS, GradDiff, method_names  # noqa: E402

# ----------------------------------------------------------------------------- statistics


def test_median_odd_even_and_empty():
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert math.isnan(stats.median([]))


def test_bootstrap_interval_of_three_values_is_their_range():
    # exact bootstrap, sorted a < b < c: P(median = a) = P(median = c) = 7/27 > 2.5 %
    assert stats.bootstrap_median_interval([0.2, 0.9, 0.5]) == (0.2, 0.9)


def test_bootstrap_interval_narrows_at_a_low_level():
    # P(median = b) = 13/27 ≈ 0.48: the central 20 % lies entirely on b
    assert stats.bootstrap_median_interval([1.0, 2.0, 3.0], level=0.2) == (2.0, 2.0)


def test_bootstrap_interval_of_five_values_by_hand():
    # n = 5, values 1..5: P(median ≤ 1) = P(at least 3 of 5 draws are 1) with p = 1/5
    # = C(5,3)(.2)^3(.8)^2 + C(5,4)(.2)^4(.8) + (.2)^5 = 0.05792 > 0.025, so the lower end is 1;
    # at level 0.8 the 10 % quantile: P(median ≤ 1) = 0.058 < 0.1 ≤ P(median ≤ 2) → 2
    assert stats.bootstrap_median_interval([1, 2, 3, 4, 5]) == (1.0, 5.0)
    assert stats.bootstrap_median_interval([1, 2, 3, 4, 5], level=0.8) == (2.0, 4.0)


def test_bootstrap_drops_nans_and_rejects_bad_level():
    assert stats.bootstrap_median_interval([math.nan, 0.4]) == (0.4, 0.4)
    assert all(math.isnan(v) for v in stats.bootstrap_median_interval([]))
    with pytest.raises(ValueError, match="level"):
        stats.bootstrap_median_interval([1.0], level=1.5)


def test_summarize():
    s = stats.summarize([0.1, 0.3, 0.2])
    assert s == {"median": 0.2, "lo": 0.1, "hi": 0.3, "min": 0.1, "max": 0.3, "n": 3}


# ----------------------------------------------------------------------------- arms


def test_arms_cover_every_registered_method():
    arms = spaces.arms_from_registry()
    covered = {a.method for a in arms}
    assert covered == set(method_names())
    pdu = sorted(a.solver for a in arms if a.method == "pdu")
    assert pdu == ["alternating-gda", "augmented-lagrangian", "extragradient", "gda", "nupi"]
    for name in method_names():
        if METHODS[name].default_solver == "penalty":
            treatments = sorted(a.solver for a in arms if a.method == name)
            assert treatments == ["gda", "penalty"], name
    assert spaces.Arm("npo", "gda").label == "npo + constraint (gda)"
    assert spaces.Arm("npo", "penalty").label == "npo"
    assert spaces.Arm("pdu", "nupi").label == "pdu (nupi)"


def test_a_method_registered_later_joins_without_code_change(monkeypatch):
    @dataclass
    class Later(GradDiff):
        name: ClassVar[str] = "later-method"
        temperature: float = 2.0

    monkeypatch.setitem(METHODS, "later-method", Later)
    arms = spaces.arms_from_registry()
    assert {a.solver for a in arms if a.method == "later-method"} == {"penalty", "gda"}
    keys = {
        p.key: p for p in spaces.search_space(spaces.Arm("later-method", "penalty"), "minitofu")
    }
    assert keys["method.options.temperature"].low == 0.5
    assert keys["method.options.temperature"].high == 8.0


def test_unknown_method_is_refused_with_the_list():
    with pytest.raises(ValueError, match="registered methods are"):
        spaces.arms_from_registry(["no-such-method"])


# ----------------------------------------------------------------------------- search spaces


def _keys(arm, bench="minitofu"):
    return {p.key: p for p in spaces.search_space(arm, bench)}


def test_search_space_of_a_fixed_weight_baseline():
    keys = _keys(spaces.Arm("npo", "penalty"))
    assert set(keys) == {
        "training.lr",
        "training.epochs",
        "method.options.beta",
        "method.multiplier_init",
    }
    beta = keys["method.options.beta"]
    assert (beta.low, beta.high, beta.reference) == pytest.approx((0.025, 0.4, 0.1))
    weight = keys["method.multiplier_init"]
    assert (weight.low, weight.high) == pytest.approx((0.1, 10.0))
    assert keys["training.epochs"].integer


def test_grad_ascent_fixed_has_no_weight_and_constrained_has_the_dual_knobs():
    assert "method.multiplier_init" not in _keys(spaces.Arm("grad-ascent", "penalty"))
    keys = _keys(spaces.Arm("grad-ascent", "gda"))
    assert {"method.epsilon", "method.multiplier_init", "method.dual_lr"} <= set(keys)
    assert (keys["method.multiplier_init"].low, keys["method.multiplier_init"].high) == (0.1, 10)


def test_search_space_of_constrained_arms():
    keys = _keys(spaces.Arm("pdu", "gda"))
    eps = keys["method.epsilon"]
    assert (eps.low, eps.high, eps.reference) == (0.01, 0.1, 0.03)
    assert keys["method.multiplier_init"].reference == 20.0  # the demo's λ₀
    assert (keys["method.dual_lr"].low, keys["method.dual_lr"].high) == (10.0, 1000.0)
    al = _keys(spaces.Arm("pdu", "augmented-lagrangian"))
    assert "method.dual_lr" not in al and "method.solver_options.penalty" in al
    rmu = _keys(spaces.Arm("rmu", "gda"))  # hidden-state MSE: 0 at θ₀, absolute ε
    assert (rmu["method.epsilon"].low, rmu["method.epsilon"].high) == (1e-3, 1e-1)
    muse = _keys(spaces.Arm("pdu", "gda"), "minimuse")
    assert "method.slack" in muse and "method.epsilon" not in muse
    with pytest.raises(ValueError, match="benchmark"):
        spaces.search_space(spaces.Arm("pdu", "gda"), "tofu-full")


@pytest.mark.parametrize("benchmark", ["minitofu", "minimuse"])
def test_every_arm_has_a_space_whose_reference_lies_inside(benchmark):
    for arm in spaces.arms_from_registry():
        space = spaces.search_space(arm, benchmark)
        assert {"training.lr", "training.epochs"} <= {p.key for p in space}
        for p in space:
            assert p.low <= p.reference <= p.high, (arm, p)
            assert p.low < p.high, (arm, p)
            assert not p.log or p.low > 0, (arm, p)


def test_reference_setting_is_the_centre():
    ref = spaces.reference_setting(spaces.search_space(spaces.Arm("pdu", "gda"), "minitofu"))
    assert ref == {
        "training.lr": 1e-3,
        "training.epochs": 12,
        "method.epsilon": 0.03,
        "method.multiplier_init": 20.0,
        "method.dual_lr": 100.0,
    }


# ----------------------------------------------------------------------------- selection


def _rec(fq, u, loss=0.01, eps=0.03, constrained=True):
    return {
        "forget_quality": fq,
        "utility_ratio": u,
        "final_retain_loss": loss,
        "epsilon": eps,
        "constrained": constrained,
    }


def test_selection_rule_minitofu():
    records = [
        _rec(0.9, 0.85),  # best FQ but utility too low
        _rec(0.7, 0.95, loss=0.031),  # breaks the bound
        _rec(0.3, 0.91),
        _rec(0.3, 0.97),  # same FQ, higher utility: the tie-break picks this one
        _rec(0.01, 0.99),
    ]
    assert spaces.select(records, "minitofu") == (3, True)
    # a fixed-weight arm is not held to ε
    fixed = [_rec(0.7, 0.95, loss=1.0, constrained=False), _rec(0.3, 0.97, constrained=False)]
    assert spaces.select(fixed, "minitofu") == (0, True)


def test_selection_without_admissible_trial_carries_the_highest_utility():
    records = [_rec(0.9, 0.5), _rec(0.1, 0.8), _rec(0.5, math.nan)]
    assert spaces.select(records, "minitofu") == (1, False)
    with pytest.raises(ValueError):
        spaces.select([], "minitofu")


def test_selection_rule_minimuse():
    def m(leak, verb, u=0.95):
        return {
            "privleak": leak,
            "forget_verbmem": verb,
            "utility_ratio": u,
            "constrained": False,
        }

    records = [m(-40.0, 0.1), m(5.0, 0.3), m(-5.0, 0.2), m(1.0, 0.1, u=0.5)]
    assert spaces.select(records, "minimuse") == (2, True)  # |5| tie: lower VerbMem


def test_tuning_score_orders_like_the_rule():
    good = spaces.tuning_score(_rec(1e-3, 0.95), "minitofu")
    better = spaces.tuning_score(_rec(0.5, 0.92), "minitofu")
    bad = spaces.tuning_score(_rec(0.99, 0.5), "minitofu")
    infeasible = spaces.tuning_score(_rec(0.99, 0.95, loss=0.06), "minitofu")
    assert better > good > 0 > max(infeasible, bad)
    assert good == pytest.approx(31 - 3)
    assert infeasible == pytest.approx(1 + 0.5 - 2)  # u capped at 1, ε/L_r = 0.5
    assert bad == pytest.approx(0.5 / 0.9 + 1 - 2)


# ----------------------------------------------------------------------------- aggregation


def _fake_arm(tmp: Path, slug: str, label: str, constrained: bool, fqs, us):
    evals = [
        {
            "arm": label,
            "build_seed": s,
            "unlearn_seed": s,
            "phase": "eval",
            "params": {"training.lr": 1e-3},
            "forget_quality": fq,
            "utility_ratio": u,
            "model_utility": 0.8 * u,
            "forget_rouge": 0.3,
            "privleak": -10.0,
            "retain_over_epsilon": 0.9 if constrained else math.nan,
            "final_retain_loss": 0.027,
            "lambda_end": 100.0,
            "seconds": 10.0 + s,
        }
        for s, fq, u in zip((1, 2, 3), fqs, us)
    ]
    record = {
        "arm": label,
        "slug": slug,
        "constrained": constrained,
        "selected": {"trial": 0, "params": {"training.lr": 1e-3}},
        "admissible": True,
        "trials": [{**evals[0], "phase": "tune", "trial": 0}],
        "eval": evals,
    }
    (tmp / "arms").mkdir(parents=True, exist_ok=True)
    (tmp / "arms" / f"{slug}.json").write_text(json.dumps(protocol._json_safe(record)))


def test_aggregate_writes_table_csv_summary_and_plot(tmp_path):
    _fake_arm(tmp_path, "pdu--gda", "pdu (gda)", True, [0.2, 0.8, 0.5], [0.91, 0.93, 0.92])
    _fake_arm(tmp_path, "npo--penalty", "npo", False, [0.01, 0.02, 0.03], [0.95, 0.96, 0.97])
    summary = protocol.aggregate(tmp_path, "minitofu", {"commit": "abc"})
    arms = {a["arm"]: a for a in summary["arms"]}
    fq = arms["pdu (gda)"]["metrics"]["forget_quality"]
    assert (fq["median"], fq["lo"], fq["hi"]) == (0.5, 0.2, 0.8)
    table = (tmp_path / "table.md").read_text()
    assert "| pdu (gda) | 0.5 [0.2, 0.8] | 0.920 [0.910, 0.930] |" in table
    assert "— (fixed weight)" in table.splitlines()[2] or "— (fixed weight)" in table
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert len((tmp_path / "eval.csv").read_text().splitlines()) == 7  # header + 6 runs
    assert json.loads((tmp_path / "summary.json").read_text())["meta"]["commit"] == "abc"
    assert arms["npo"]["unlearn_seeds"] == [1, 2, 3]


def test_eps_sweep_plot_from_records(tmp_path):
    records = [
        {
            "epsilon": e,
            "forget_quality": fq,
            "utility_ratio": u,
            "lambda_end": lam,
            "final_retain_loss": 0.9 * e,
        }
        for e, fq, u, lam in [(0.01, 1e-3, 0.97, 3000), (0.03, 0.3, 0.92, 900), (0.1, 0.8, 0.8, 50)]
    ]
    path = eps_sweep.plot(records, tmp_path / "eps.png", "test")
    assert path.stat().st_size > 1000


def test_protocol_refuses_tuning_seed_among_eval_seeds():
    with pytest.raises(SystemExit):
        protocol._parse(["--tune-seed", "1", "--eval-seeds", "1", "2"])


# ----------------------------------------------------------------------------- end to end


@pytest.mark.timeout(900)  # 77 s at load 3 on 2 cores; 36 min at load 15
def test_quick_protocol_runs_end_to_end(tmp_path):
    """Tiny presets: PDU (gda) and GradDiff (fixed and constrained), 2 trials, 2 eval seeds."""
    summary = protocol.main(
        ["--quick", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    )
    arms = {a["arm"]: a for a in summary["arms"]}
    assert set(arms) == {"pdu (gda)", "grad-diff", "grad-diff + constraint (gda)"}
    for arm in arms.values():
        assert arm["trials"] == 2 and arm["eval_seeds"] == [1, 2]
        assert arm["metrics"]["forget_quality"]["n"] == 2
        assert 0.0 <= arm["metrics"]["forget_quality"]["median"] <= 1.0
    files = json.loads((tmp_path / "out" / "arms" / "pdu--gda.json").read_text())
    assert files["trials"][0]["params"]["method.epsilon"] == 0.03  # trial 0 = reference
    assert {t["build_seed"] for t in files["trials"]} == {0}
    assert [e["unlearn_seed"] for e in files["eval"]] == [1, 2]
    # every trial and evaluation is an MLflow run
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{(tmp_path / 'out' / 'mlflow.db').resolve()}")
    exp = client.get_experiment_by_name("efficacy-minitofu")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) == 3 * (2 + 2)
    assert {r.data.tags["phase"] for r in runs} == {"tune", "eval"}
    # a re-run resumes: every arm is skipped, nothing new is trained
    protocol.main(
        ["--quick", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    )
    assert len(client.search_runs([exp.experiment_id], max_results=100)) == 12


def test_unknown_field_types_are_not_tuned():
    # a method's string / bool / int fields never enter the search space
    fields = {f.name for f in dataclasses.fields(METHODS["grad-diff"])}
    assert "retain_loss" in fields
    keys = _keys(spaces.Arm("grad-diff", "penalty"))
    assert not any("retain_loss" in k for k in keys)


@pytest.mark.timeout(900)
def test_quick_protocol_on_minimuse(tmp_path):
    """The mini-MUSE path (corpus unlearning, MUSE's evaluator, PrivLeak selection) runs."""
    summary = protocol.main(
        [
            "--quick",
            "--benchmark",
            "minimuse",
            "--methods",
            "pdu",
            "--trials",
            "1",
            "--out",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    (arm,) = summary["arms"]
    assert arm["arm"] == "pdu (gda)" and arm["trials"] == 1
    # (the tiny target scores KnowMem 0, so its utility ratio is undefined: NaN, not counted)
    for key in ("forget_verbmem", "forget_knowmem", "retain_knowmem", "privleak", "seconds"):
        assert arm["metrics"][key]["n"] == 2, key
    table = (tmp_path / "out" / "table.md").read_text()
    assert "VerbMem forget" in table and "pdu (gda)" in table
