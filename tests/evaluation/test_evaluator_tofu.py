"""TofuEvaluator on a tiny random Llama and TOFU-shaped fixture rows."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import hmean
from test_evaluator_fixtures import (
    FORGET,
    HOLDOUT,
    build_llama,
    build_tokenizer,
    eos_first_llama,
    tofu_data,
)

from constrained_unlearn.evaluation.classifier import classifier_probabilities
from constrained_unlearn.evaluation.metrics import forget_quality
from constrained_unlearn.evaluation.provenance import ProvenanceMismatchError
from constrained_unlearn.evaluation.tofu import (
    DEFAULT_TOFU_METRICS,
    UTILITY_COMPONENTS,
    MissingSplitError,
    TofuEvaluator,
    write_retain_log,
)
from constrained_unlearn.llm.tokenization import PromptTemplate

FAST = {"max_new_tokens": 6, "batch_size": 8}


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def target(tok):
    return build_llama(tok, seed=0)


@pytest.fixture(scope="module")
def retain(tok):
    return build_llama(tok, seed=1)


@pytest.fixture(scope="module")
def retain_dir(tmp_path_factory, retain, tok):
    folder = tmp_path_factory.mktemp("retain")
    write_retain_log(retain, tok, tofu_data(), folder, **FAST)
    return folder


@pytest.fixture(scope="module")
def retain_log(retain_dir) -> dict:
    return json.loads((retain_dir / "TOFU_EVAL.json").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory, target, tok, retain_dir):
    out = tmp_path_factory.mktemp("run")
    evaluator = TofuEvaluator(target, tok, tofu_data(), retain_logs=retain_dir, **FAST)
    return evaluator.evaluate(out), out


def test_retain_log_has_what_forget_quality_and_privleak_need(retain_log) -> None:
    scores = retain_log["forget_truth_ratio"]["value_by_index"]
    assert sorted(scores, key=int) == [str(i) for i in range(len(FORGET))]
    assert all(v["score"] > 0 for v in scores.values())
    assert 0.0 <= retain_log["mia_min_k"]["agg_value"] <= 1.0
    assert "forget_quality" not in retain_log and "privleak" not in retain_log
    assert retain_log["provenance"]["evaluator"] == "TOFU"


def test_report_files_have_open_unlearning_shapes(run) -> None:
    results, out = run
    full = json.loads((out / "TOFU_EVAL.json").read_text())
    summary = json.loads((out / "TOFU_SUMMARY.json").read_text())
    expected = set(DEFAULT_TOFU_METRICS) | set(UTILITY_COMPONENTS) | {"mia_min_k"}
    assert set(full) == expected | {"provenance"}
    assert list(full) == sorted(full)  # keys sorted, as open-unlearning writes them
    assert set(summary) == set(DEFAULT_TOFU_METRICS) | {"bootstrap_ci", "provenance"}
    for metric in DEFAULT_TOFU_METRICS:
        assert summary[metric] == full[metric]["agg_value"]
        assert results[metric]["agg_value"] == pytest.approx(full[metric]["agg_value"])

    n = len(FORGET)
    prob = full["forget_Q_A_Prob"]["value_by_index"]
    assert sorted(prob, key=int) == [str(i) for i in range(n)]
    for item in prob.values():
        assert item["prob"] == pytest.approx(math.exp(-item["avg_loss"]))
    mean = np.mean([v["prob"] for v in prob.values()])
    assert full["forget_Q_A_Prob"]["agg_value"] == pytest.approx(mean)
    ci = full["forget_Q_A_Prob"]["bootstrap_ci"]
    assert ci["low"] <= mean <= ci["high"]
    assert summary["bootstrap_ci"]["forget_Q_A_Prob"] == [ci["low"], ci["high"]]

    rouge = full["forget_Q_A_ROUGE"]["value_by_index"]["0"]
    assert set(rouge) == {
        "rouge1_recall",
        "rougeL_recall",
        "rougeL_f1",
        "input",
        "ground_truth",
        "generation",
    }
    assert rouge["ground_truth"] == FORGET[0]["answer"]
    assert rouge["input"] == f"Question: {FORGET[0]['question']}\nAnswer: "

    ratios = np.array([v["score"] for v in full["forget_truth_ratio"]["value_by_index"].values()])
    assert full["forget_truth_ratio"]["agg_value"] == pytest.approx(
        np.mean(np.minimum(ratios, 1 / ratios)), rel=1e-6
    )
    fq = full["forget_quality"]
    assert set(fq) >= {"agg_value", "floor", "complete_separation", "description"}
    assert 0.0 < fq["agg_value"] <= 1.0
    mia = full["mia_min_k"]
    assert mia["agg_value"] == mia["auc"]
    assert len(mia["forget"]["value_by_index"]) == n
    assert len(mia["holdout"]["value_by_index"]) == len(HOLDOUT)
    components = [full[k]["agg_value"] for k in UTILITY_COMPONENTS]
    assert len(full["ra_Q_A_Prob_normalised"]["value_by_index"]) == 3
    expected_mu = 0.0 if min(components) == 0 else hmean(components)
    assert full["model_utility"]["agg_value"] == pytest.approx(expected_mu)
    es = [v["score"] for v in full["extraction_strength"]["value_by_index"].values()]
    assert all(0.0 < s <= 1.0 for s in es)  # OU quirk: never 0 under open-unlearning
    assert full["provenance"]["convention"] == "open-unlearning"
    assert full["provenance"]["model"]["weights_sha256"]


def test_forget_quality_matches_metric_and_privleak_uses_retain_auc(run, retain_log) -> None:
    results, _ = run
    mine = [v["score"] for v in results["forget_truth_ratio"]["value_by_index"].values()]
    theirs = [v["score"] for v in retain_log["forget_truth_ratio"]["value_by_index"].values()]
    assert results["forget_quality"]["agg_value"] == pytest.approx(
        forget_quality(mine, theirs).pvalue
    )
    auc, ret = results["mia_min_k"]["agg_value"], retain_log["mia_min_k"]["agg_value"]
    expected = ((1 - auc) - (1 - ret)) / ((1 - ret) + 1e-10) * 100
    assert results["privleak"]["agg_value"] == pytest.approx(expected)


def test_retain_model_against_its_own_log_is_refused_unless_allowed(
    retain, target, tok, retain_dir
) -> None:
    """#13.6: a log made by the evaluated weights gives FQ 1 / privleak 0 by construction."""
    kwargs = {"retain_logs": retain_dir, "metrics": ["forget_quality", "privleak"], **FAST}
    with pytest.raises(ValueError, match="very weights under evaluation.*allow_self_reference"):
        TofuEvaluator(retain, tok, tofu_data(), **kwargs).evaluate()
    # a model with other weights is accepted with the same log
    TofuEvaluator(target, tok, tofu_data(), **kwargs).evaluate()
    with pytest.warns(UserWarning, match="very weights under evaluation"):
        results = TofuEvaluator(
            retain, tok, tofu_data(), allow_self_reference=True, **kwargs
        ).evaluate()
    assert results["forget_quality"]["agg_value"] == pytest.approx(1.0)
    assert results["privleak"]["agg_value"] == pytest.approx(0.0, abs=1e-6)


def test_missing_retain_log_is_an_error_unless_skipped(target, tok) -> None:
    evaluator = TofuEvaluator(target, tok, tofu_data(), metrics=["forget_quality"], **FAST)
    with pytest.raises(ValueError, match="retain_logs=.*skip_forget_quality"):
        evaluator.evaluate()
    results = evaluator.evaluate(skip_forget_quality=True)
    assert set(results) == {"provenance"}  # its pre-compute goes with it
    results = TofuEvaluator(
        target, tok, tofu_data(), metrics=["forget_truth_ratio", "forget_quality"], **FAST
    ).evaluate(skip_forget_quality=True)
    assert set(results) == {"forget_truth_ratio", "provenance"}
    evaluator = TofuEvaluator(target, tok, tofu_data(), metrics=["privleak"], **FAST)
    with pytest.raises(ValueError, match="privleak"):
        evaluator.evaluate()


def test_missing_holdout_split_is_a_clear_error(target, tok) -> None:
    data = tofu_data()
    del data["holdout10"]
    with pytest.raises(MissingSplitError, match="'holdout10'.*holdout_split="):
        TofuEvaluator(target, tok, data, **FAST)
    # without membership metrics the holdout split is not needed
    TofuEvaluator(target, tok, data, metrics=["forget_Q_A_Prob"], **FAST)
    with pytest.raises(MissingSplitError, match="world_facts_perturbed"):
        TofuEvaluator(target, tok, {"forget10_perturbed": FORGET, "holdout10": HOLDOUT})


def test_open_unlearning_log_needs_compat(target, tok, retain_log, tmp_path) -> None:
    ou_log = {
        "forget_truth_ratio": {
            "agg_value": 0.5,
            "value_by_index": {str(i): {"score": s} for i, s in enumerate([0.4, 0.9, 1.3, 0.7])},
        },
        "mia_min_k": {"agg_value": 0.55},
    }
    path = tmp_path / "TOFU_EVAL.json"
    path.write_text(json.dumps(ou_log))
    metrics = ["forget_quality", "privleak"]
    strict = TofuEvaluator(target, tok, tofu_data(), retain_logs=path, metrics=metrics, **FAST)
    with pytest.raises(ProvenanceMismatchError, match="compat='open-unlearning'"):
        strict.evaluate()
    ou = TofuEvaluator(
        target,
        tok,
        tofu_data(),
        retain_logs=tmp_path,
        compat="open-unlearning",
        metrics=metrics,
        **FAST,
    )
    with pytest.warns(UserWarning, match="no provenance"):
        results = ou.evaluate()
    mine = [v["score"] for v in results["forget_truth_ratio"]["value_by_index"].values()]
    assert results["forget_quality"]["agg_value"] == pytest.approx(
        forget_quality(mine, [0.4, 0.9, 1.3, 0.7]).pvalue
    )
    assert results["privleak"]["retain_auc"] == 0.55
    # an open-unlearning log of another split size is refused even under compat
    ou_log["forget_truth_ratio"]["value_by_index"]["4"] = {"score": 1.0}
    bad = TofuEvaluator(
        target,
        tok,
        tofu_data(),
        retain_logs=ou_log,
        compat="open-unlearning",
        metrics=["forget_quality"],
        **FAST,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="5 truth ratios but forget10_perturbed has 4"):
            bad.evaluate()


def _edited(log: dict, path: tuple[str, ...], value) -> dict:
    out = json.loads(json.dumps(log))
    node = out["provenance"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("label", "log_edit", "kwargs", "data_edit"),
    [
        ("forget split", None, {"forget_split": "forget05", "holdout_split": "holdout05"}, None),
        ("forget data", None, {}, "forget"),
        ("convention", None, {"convention": "tofu-original"}, None),
        ("evaluator version", ("evaluator_version",), {}, None),
        ("model family", ("model", "model_type"), {}, None),
        ("tokenizer", ("tokenizer", "fingerprint"), {}, None),
        (
            "prompt template",
            None,
            {"template": PromptTemplate(plain_format="Q: {question}\nA: ")},
            None,
        ),
        ("question column", None, {"question_key": "paraphrased_question"}, None),
        ("holdout data", None, {}, "holdout"),
    ],
)
def test_retain_log_made_under_other_settings_is_refused(
    target, tok, retain_log, label, log_edit, kwargs, data_edit
) -> None:
    log = _edited(retain_log, log_edit, "other") if log_edit else retain_log
    data = tofu_data()
    if data_edit == "forget":
        data["forget10_perturbed"][0]["answer"] = "Belwyn was born in Faldren."
    if data_edit == "holdout":
        data["holdout10"][1]["answer"] = "Pell writes cookbooks."
    evaluator = TofuEvaluator(target, tok, data, retain_logs=log, **{**FAST, **kwargs})
    with pytest.raises(ProvenanceMismatchError, match=f"different {label} "):
        evaluator.evaluate()


def test_empty_generation_scores_zero(tok) -> None:
    model = eos_first_llama(tok)
    evaluator = TofuEvaluator(model, tok, tofu_data(), metrics=["forget_Q_A_ROUGE"], **FAST)
    results = evaluator.evaluate()
    items = results["forget_Q_A_ROUGE"]["value_by_index"].values()
    assert all(item["generation"] == "" for item in items)
    assert all(item["rougeL_recall"] == 0.0 and item["rouge1_recall"] == 0.0 for item in items)
    assert results["forget_Q_A_ROUGE"]["agg_value"] == 0.0


def test_results_are_reused_only_under_the_same_weights_and_settings(tok, tmp_path) -> None:
    model = build_llama(tok, seed=3)
    metrics = ["forget_Q_A_Prob"]
    TofuEvaluator(model, tok, tofu_data(), metrics=metrics, **FAST).evaluate(tmp_path)
    path = tmp_path / "TOFU_EVAL.json"
    stored = json.loads(path.read_text())
    true_value = stored["forget_Q_A_Prob"]["agg_value"]
    stored["forget_Q_A_Prob"]["agg_value"] = 123.0  # marker: reused iff it comes back
    path.write_text(json.dumps(stored))

    again = TofuEvaluator(model, tok, tofu_data(), metrics=metrics, **FAST).evaluate(tmp_path)
    assert again["forget_Q_A_Prob"]["agg_value"] == 123.0

    other = TofuEvaluator(model, tok, tofu_data(), metrics=metrics, max_new_tokens=7, batch_size=8)
    with pytest.warns(UserWarning, match="generation.max_new_tokens"):
        changed = other.evaluate(tmp_path)
    assert changed["forget_Q_A_Prob"]["agg_value"] == pytest.approx(true_value)

    stored = json.loads(path.read_text())
    stored["forget_Q_A_Prob"]["agg_value"] = 123.0
    path.write_text(json.dumps(stored))
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1.0
    with pytest.warns(UserWarning, match="model weights"):
        retrained = TofuEvaluator(
            model, tok, tofu_data(), metrics=metrics, max_new_tokens=7, batch_size=8
        ).evaluate(tmp_path)
    assert retrained["forget_Q_A_Prob"]["agg_value"] != 123.0


def test_optional_metrics(target, retain, tok) -> None:
    metrics = [
        "exact_memorization",
        "mia_loss",
        "mia_zlib",
        "mia_min_k_plus_plus",
        "mia_gradnorm",
        "mia_reference",
    ]
    evaluator = TofuEvaluator(
        target, tok, tofu_data(), metrics=metrics, reference_model=target, **FAST
    )
    results = evaluator.evaluate()
    for m in metrics[1:]:
        assert 0.0 <= results[m]["auc"] <= 1.0
        assert len(results[m]["forget"]["value_by_index"]) == len(FORGET)
    # the model against itself: every reference score is 0, so the AUC is exactly 0.5
    ref = results["mia_reference"]
    assert all(v["score"] == 0.0 for v in ref["forget"]["value_by_index"].values())
    assert ref["auc"] == 0.5
    em = results["exact_memorization"]
    assert all(0.0 <= v["score"] <= 1.0 for v in em["value_by_index"].values())
    with pytest.raises(ValueError, match="reference_model"):
        TofuEvaluator(target, tok, tofu_data(), metrics=["mia_reference"])
    with pytest.raises(ValueError, match="unknown metric"):
        TofuEvaluator(target, tok, tofu_data(), metrics=["forget_quality_typo"])


def test_gibberish_classifier_metric(target, tok) -> None:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=2,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    classifier = LlamaForSequenceClassification(config).eval()
    evaluator = TofuEvaluator(
        target,
        tok,
        tofu_data(),
        metrics=["forget_Q_A_ROUGE", "forget_Q_A_gibberish"],
        classifier=(classifier, tok),
        **FAST,
    )
    results = evaluator.evaluate()
    gens = [v["generation"] for v in results["forget_Q_A_ROUGE"]["value_by_index"].values()]
    expected = classifier_probabilities(classifier, tok, gens)
    got = [v["score"] for v in results["forget_Q_A_gibberish"]["value_by_index"].values()]
    assert got == pytest.approx(expected.tolist())


def test_chat_template_and_tofu_original_convention(target, tok) -> None:
    chat = PromptTemplate(kind="chat")
    results = TofuEvaluator(
        target, tok, tofu_data(), template=chat, metrics=["forget_Q_A_ROUGE"], **FAST
    ).evaluate()
    assert results["forget_Q_A_ROUGE"]["value_by_index"]["0"]["input"].endswith("<|assistant|>")
    original = TofuEvaluator(
        target,
        tok,
        tofu_data(),
        convention="tofu-original",
        metrics=["extraction_strength", "forget_Q_A_ROUGE"],
        max_new_tokens=40,
        batch_size=8,
    ).evaluate()
    p = original["provenance"]
    assert p["convention"] == "tofu-original" and p["generation"]["length_includes_prompt"]
    assert p["convention_settings"]["max_questions"] == 300
    with pytest.raises(ValueError, match="MUSE convention"):
        TofuEvaluator(target, tok, tofu_data(), convention="muse-original")
    # original TOFU evaluated only the first 300 rows of every split
    data = tofu_data()
    data["forget10_perturbed"] = data["forget10_perturbed"] * 80  # 320 rows
    cut = TofuEvaluator(target, tok, data, convention="tofu-original")
    full = TofuEvaluator(target, tok, data)
    assert len(cut.rows["forget10_perturbed"]) == 300
    assert len(full.rows["forget10_perturbed"]) == 320
