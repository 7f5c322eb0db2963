"""TOFU formulas: probability, option probability, truth ratio, forget quality, model utility."""

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

from constrained_unlearn.evaluation.metrics import (
    MODEL_UTILITY_COMPONENTS,
    aggregate_truth_ratio,
    forget_quality,
    harmonic_mean,
    model_utility,
    normalized_probability,
    option_normalized_probability,
    separation_floor,
    separation_floor_log10,
    truth_ratios,
)


def test_normalized_probability() -> None:
    # exp(-0) = 1, exp(-ln 4) = 0.25
    assert normalized_probability([0.0, math.log(4.0)]) == pytest.approx([1.0, 0.25])


def test_option_normalized_probability_by_hand() -> None:
    # P_norm(a) = 1/2 (nll ln2), wrong options 1/4 and 1/4 -> 0.5 / (0.5 + 0.25 + 0.25) = 0.5
    # second question: P(a) = 1/4, single wrong option 3/4 -> 0.25
    got = option_normalized_probability(
        [math.log(2.0), math.log(4.0)],
        [[math.log(4.0), math.log(4.0)], [math.log(4.0 / 3.0)]],
    )
    assert got == pytest.approx([0.5, 0.25])


def test_option_normalized_probability_does_not_underflow() -> None:
    # NLLs of 1000 underflow exp(); the ratio is still 1/(1 + e^{-1}) = 0.731059
    got = option_normalized_probability([1000.0], [[1001.0]])
    assert got[0] == pytest.approx(1.0 / (1.0 + math.exp(-1.0)))


def test_option_normalized_probability_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"wrong_nll\[1\] is empty"):
        option_normalized_probability([1.0, 1.0], [[2.0], []])
    with pytest.raises(ValueError, match="correct_nll has 2 entries"):
        option_normalized_probability([1.0, 1.0], [[2.0]])


# Three questions (NLLs):
#   q0: true 1.0, perturbed (2.0, 3.0) -> mean 2.5 -> R0 = e^{-2.5}/e^{-1} = e^{-1.5} = 0.223130
#   q1: true 2.0, perturbed (1.0,)     -> R1 = e^{-1}/e^{-2} = e = 2.718282
#   q2: true 0.5, perturbed (0.5,)*3   -> R2 = 1
TRUE = [1.0, 2.0, 0.5]
PERTURBED = [[2.0, 3.0], [1.0], [0.5, 0.5, 0.5]]


def test_truth_ratio_by_hand_any_number_of_perturbations() -> None:
    exact = truth_ratios(TRUE, PERTURBED, epsilon=0.0)
    assert exact == pytest.approx([math.exp(-1.5), math.e, 1.0], rel=1e-12)
    ou = truth_ratios(TRUE, PERTURBED)  # eps 1e-10 is negligible at these probabilities
    assert ou == pytest.approx(exact, rel=1e-8)


def test_truth_ratio_is_geometric_not_arithmetic() -> None:
    # geometric: exp(-(1+3)/2) = e^{-2} = 0.135335; arithmetic would be (e^-1 + e^-3)/2 = 0.208830
    r = truth_ratios([0.0], [[1.0, 3.0]], epsilon=0.0)
    assert r[0] == pytest.approx(math.exp(-2.0))
    assert r[0] != pytest.approx((math.exp(-1.0) + math.exp(-3.0)) / 2.0)


def test_truth_ratio_epsilon_matters_for_collapsed_models() -> None:
    # true NLL 30 (p_c = 9.36e-14), perturbed 31 (p_w = 3.44e-14):
    # exact R = e^{-1} = 0.367879; OU R = 3.44e-14 / (9.36e-14 + 1e-10) = 3.44e-4
    assert truth_ratios([30.0], [[31.0]], epsilon=0.0)[0] == pytest.approx(math.exp(-1.0))
    ou = truth_ratios([30.0], [[31.0]])[0]
    assert ou == pytest.approx(math.exp(-31.0) / (math.exp(-30.0) + 1e-10), rel=1e-12)
    assert ou < 1e-3


def test_truth_ratio_aggregators_by_hand() -> None:
    r = np.array([math.exp(-1.5), math.e, 1.0])
    # closer_to_1_better: (0.223130 + 1/e=0.367879 + 1)/3 = 0.530337
    assert aggregate_truth_ratio(r, "closer_to_1_better") == pytest.approx(0.5303365, abs=1e-6)
    # true_better: (1 - 0.223130 + 0 + 0)/3 = 0.258957
    assert aggregate_truth_ratio(r, "true_better") == pytest.approx(0.2589566, abs=1e-6)
    # prob_mean: p_c/(p_c+p_w) = 1/(1+R): (0.817574 + 0.268941 + 0.5)/3 = 0.528839
    assert aggregate_truth_ratio(r, "prob_mean") == pytest.approx(0.5288386, abs=1e-6)


def test_truth_ratio_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"perturbed_nll\[1\] is empty: question 1"):
        truth_ratios([1.0, 1.0], [[2.0], []])
    with pytest.raises(ValueError, match="true_nll has 2 entries but perturbed_nll has 1"):
        truth_ratios([1.0, 1.0], [[2.0]])
    with pytest.raises(ValueError, match="not finite"):
        truth_ratios([float("nan")], [[2.0]])
    with pytest.raises(ValueError, match="aggregator"):
        aggregate_truth_ratio([1.0], "mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        aggregate_truth_ratio([], "true_better")


@pytest.mark.parametrize(
    ("n", "expected"),
    [(40, 1.86e-23), (200, 1.94e-119), (400, 1.06e-239)],  # spec §3.5 table
)
def test_separation_floor_matches_the_spec_table(n: int, expected: float) -> None:
    assert separation_floor(n, n) == pytest.approx(expected, rel=5e-3)
    assert separation_floor_log10(n, n) == pytest.approx(math.log10(expected), abs=3e-3)


def test_separation_floor_small_and_unequal_sizes() -> None:
    # n=3, m=5: two separating orders out of C(8,3) = 56 -> 2/56 = 0.0357143
    assert separation_floor(3, 5) == pytest.approx(2.0 / 56.0)
    # n=m=1: D is always 1, p = 2/C(2,1) = 1
    assert separation_floor(1, 1) == 1.0
    # closed form equals scipy's exact p-value for non-interleaving samples
    for n, m in [(3, 5), (40, 37), (7, 12), (400, 400)]:
        p = ks_2samp(np.arange(n), np.arange(m) + n).pvalue
        assert separation_floor(n, m) == pytest.approx(p, rel=1e-9)
    # far below float64: 0.0, but the log10 stays finite (C(2000,1000) ~ 2.05e600)
    assert separation_floor(1000, 1000) == 0.0
    assert separation_floor_log10(1000, 1000) == pytest.approx(-600.0, abs=0.5)


def test_forget_quality_complete_separation_is_described_as_floor() -> None:
    fq = forget_quality(np.linspace(0.01, 0.1, 40), np.linspace(0.5, 0.9, 40))
    assert fq.complete_separation
    assert fq.statistic == 1.0
    assert fq.pvalue == pytest.approx(1.86e-23, rel=5e-3)
    assert fq.floor == pytest.approx(fq.pvalue, rel=1e-9)
    assert fq.describe().startswith("complete separation (floor 1.86e-23")
    assert "1.86e-23" in fq.describe() and "n=40, m=40" in fq.describe()


def test_forget_quality_describe_when_floor_underflows() -> None:
    fq = forget_quality(np.arange(600.0), np.arange(600.0) + 1000.0)
    assert fq.complete_separation and fq.floor == 0.0
    assert "complete separation (floor 10^-" in fq.describe()


def test_forget_quality_retain_against_itself_is_one() -> None:
    r = np.random.default_rng(0).uniform(0.1, 2.0, 40)
    fq = forget_quality(r, r)
    assert fq.pvalue == 1.0 and fq.statistic == 0.0 and not fq.complete_separation
    assert "KS p-value" in fq.describe()


def test_forget_quality_small_interleaved_by_hand() -> None:
    # pooled order 1(u) 1.5(r) 2(u) 2.5(r) 3(u) 3.5(r): F_u - F_r alternates 1/3, 0 -> D = 1/3.
    # With n=m=3 and distinct values D >= 1/3 always, so p = P(D >= 1/3) = 1.
    fq = forget_quality([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert fq.statistic == pytest.approx(1.0 / 3.0)
    assert fq.pvalue == pytest.approx(1.0)
    assert not fq.complete_separation


def test_forget_quality_ties_at_the_border_are_not_separation() -> None:
    fq = forget_quality([1.0, 2.0], [2.0, 3.0])
    assert not fq.complete_separation


def test_forget_quality_requires_retain_ratios() -> None:
    with pytest.raises(ValueError, match="retain_ratios is required"):
        forget_quality([0.5, 0.6], None)
    with pytest.raises(ValueError, match="≥ 1 question"):
        forget_quality([0.5], [])


NINE = [1.0, 0.5, 0.5, 0.25, 1.0, 1.0, 0.5, 0.25, 1.0]


def test_model_utility_harmonic_mean_by_hand() -> None:
    # sum of reciprocals = 1+2+2+4+1+1+2+4+1 = 18 -> MU = 9/18 = 0.5
    assert harmonic_mean(NINE) == pytest.approx(0.5)
    assert model_utility(dict(zip(MODEL_UTILITY_COMPONENTS, NINE))) == pytest.approx(0.5)


def test_model_utility_zero_component_gives_zero() -> None:
    values = dict(zip(MODEL_UTILITY_COMPONENTS, NINE))
    values["wf_Truth_Ratio"] = 0.0
    assert model_utility(values) == 0.0


def test_model_utility_bad_inputs() -> None:
    values = dict(zip(MODEL_UTILITY_COMPONENTS, NINE))
    with pytest.raises(ValueError, match="ra_Q_A_ROUGE"):
        model_utility({**values, "ra_Q_A_ROUGE": -0.1})
    with pytest.raises(ValueError, match="retain_Q_A_Prob"):
        model_utility({**values, "retain_Q_A_Prob": float("nan")})
    missing = dict(values)
    del missing["wf_Q_A_ROUGE"]
    with pytest.raises(ValueError, match=r"missing \['wf_Q_A_ROUGE'\]"):
        model_utility(missing)
    with pytest.raises(ValueError, match="empty"):
        harmonic_mean([])
    with pytest.raises(ValueError, match=r"values\[1\]"):
        harmonic_mean([0.5, -1.0])


# -- the exact KS p-value, counted without scipy ------------------------------------------------
def test_ks_pvalue_exact_by_hand():
    from constrained_unlearn.evaluation.metrics.forget_quality import ks_pvalue_exact

    # n = m = 2: C(4, 2) = 6 orderings of the pooled sample. D = 1 for the 2 separated ones
    # (xxyy, yyxx), D = 1/2 for the other 4, so P(D ≥ 1) = 2/6, P(D ≥ 1/2) = 1.
    assert ks_pvalue_exact(1.0, 2, 2) == pytest.approx(1 / 3, rel=1e-15)
    assert ks_pvalue_exact(0.5, 2, 2) == 1.0
    # n = 1, m = 2: orderings xyy, yxy, yyx with D = 1, 1/2, 1: P(D ≥ 1) = 2/3
    assert ks_pvalue_exact(1.0, 1, 2) == pytest.approx(2 / 3, rel=1e-15)
    assert ks_pvalue_exact(1.0, 40, 40) == pytest.approx(2 / math.comb(80, 40), rel=1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_forget_quality_equals_scipy_ks_2samp(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n, m = (int(v) for v in rng.integers(1, 120, size=2))
        x, y = rng.normal(size=n), rng.normal(loc=rng.uniform(0, 1.5), size=m)
        if seed % 2:  # ties, within and across samples
            x, y = np.round(x, 1), np.round(y, 1)
        ours, theirs = forget_quality(x, y), ks_2samp(x, y)
        assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
        assert ours.pvalue == pytest.approx(theirs.pvalue, rel=1e-12)
