"""Bootstrap interval and convention settings."""

import pytest

from constrained_unlearn.evaluation.metrics import (
    Convention,
    bootstrap_ci,
    convention_settings,
    parse_convention,
)


def test_bootstrap_two_point_distribution_by_hand() -> None:
    # resampling (0, 1) twice: the mean is 0, 0.5, 1 with probability 1/4, 1/2, 1/4.
    # 95 %: 2.5th percentile 0, 97.5th 1. 40 %: 30th and 70th percentiles both 0.5.
    assert bootstrap_ci([0.0, 1.0], n_resamples=20000, seed=1) == (0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], confidence=0.4, n_resamples=20000, seed=1) == (0.5, 0.5)


def test_bootstrap_constant_and_seeded() -> None:
    assert bootstrap_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3))
    values = [0.1, 0.9, 0.4, 0.7, 0.2, 0.5]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)
    low, high = bootstrap_ci(values)
    assert low < sum(values) / len(values) < high


def test_bootstrap_bad_inputs() -> None:
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match=r"values\[1\]"):
        bootstrap_ci([0.1, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0.1], confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([0.1], n_resamples=0)


def test_convention_settings() -> None:
    ou = convention_settings("open-unlearning")
    assert ou.rouge_use_stemmer and ou.es_ou_quirk and ou.verbmem_reference_max_tokens is None
    muse = convention_settings(Convention.MUSE_ORIGINAL)
    assert not muse.rouge_use_stemmer and muse.verbmem_reference_max_tokens == 128
    assert muse.score_scale == 100.0 and not muse.auc_memorized_high
    tofu = convention_settings("tofu-original")
    assert tofu.max_questions == 300 and tofu.generation_length_includes_prompt
    assert tofu.to_dict()["convention"] == "tofu-original"
    assert parse_convention("muse-original") is Convention.MUSE_ORIGINAL
    with pytest.raises(ValueError, match="'open-unlearning', 'tofu-original', 'muse-original'"):
        parse_convention("ou")


def test_evaluator_settings_refuse_the_other_benchmarks_convention() -> None:
    from constrained_unlearn.evaluation.provenance import evaluator_settings

    tofu = evaluator_settings("TOFU", "tofu-original", compat=None, batch_size=4)
    assert tofu.convention == "tofu-original"
    muse = evaluator_settings("MUSE", "open-unlearning", compat="open-unlearning", batch_size=1)
    assert muse.convention == "open-unlearning"
    with pytest.raises(ValueError, match="'muse-original' is a MUSE convention; TofuEvaluator"):
        evaluator_settings("TOFU", "muse-original", compat=None, batch_size=4)
    with pytest.raises(ValueError, match="'tofu-original' is a TOFU convention; MuseEvaluator"):
        evaluator_settings("MUSE", "tofu-original", compat=None, batch_size=4)
    with pytest.raises(ValueError, match="compat='ou'; use None or 'open-unlearning'"):
        evaluator_settings("TOFU", "open-unlearning", compat="ou", batch_size=4)
    with pytest.raises(ValueError, match="batch_size=0 must be ≥ 1"):
        evaluator_settings("MUSE", "open-unlearning", compat=None, batch_size=0)
