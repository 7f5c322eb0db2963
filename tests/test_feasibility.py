"""The end-of-run feasibility check, on hand-computed values."""

import math
import warnings

import pytest

from constrained_unlearn.engine import ConstraintInfeasibleWarning, check_feasibility
from constrained_unlearn.engine.feasibility import warn_if_infeasible


def test_satisfied_and_violated_with_factor():
    reports = check_feasibility({"retain": 0.06, "kl": 0.01}, {"retain": 0.03, "kl": 0.02})
    assert not reports["retain"].satisfied
    assert reports["retain"].factor == pytest.approx(2.0)
    assert reports["kl"].satisfied
    assert reports["kl"].factor == pytest.approx(0.5)


def test_tolerance_is_relative_to_the_bound():
    # 0.032 ≤ 0.03 · 1.1 = 0.033 → satisfied; 0.034 > 0.033 → not
    assert check_feasibility({"r": 0.032}, {"r": 0.03}, tolerance=0.1)["r"].satisfied
    assert not check_feasibility({"r": 0.034}, {"r": 0.03}, tolerance=0.1)["r"].satisfied


def test_nan_is_never_satisfied_and_zero_bound_factor():
    assert not check_feasibility({"r": math.nan}, {"r": 1.0})["r"].satisfied
    assert check_feasibility({"r": 0.5}, {"r": 0.0})["r"].factor == math.inf


def test_bad_tolerance_and_missing_value():
    with pytest.raises(ValueError, match="tolerance"):
        check_feasibility({"r": 1.0}, {"r": 1.0}, tolerance=-0.1)
    with pytest.raises(ValueError, match="no final value"):
        check_feasibility({}, {"r": 1.0})


def test_warning_names_the_factor():
    reports = check_feasibility({"retain": 1.96}, {"retain": 0.03})
    with pytest.warns(ConstraintInfeasibleWarning, match=r"65\.33 × the bound"):
        warn_if_infeasible(reports)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_infeasible(check_feasibility({"retain": 0.01}, {"retain": 0.03}))
