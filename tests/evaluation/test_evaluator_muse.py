"""MuseEvaluator on a tiny random Llama and MUSE-shaped fixture rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_evaluator_fixtures import build_llama, build_tokenizer, eos_first_llama, muse_data

from constrained_unlearn.evaluation.metrics import (
    build_knowmem_prompt,
    knowmem_scores,
    mia_auc,
    min_k_scores,
)
from constrained_unlearn.evaluation.muse import (
    DEFAULT_MUSE_METRICS,
    MuseEvaluator,
    write_retrain_log,
)
from constrained_unlearn.evaluation.provenance import ProvenanceMismatchError
from constrained_unlearn.evaluation.scoring import encode_text, score_sequences
from constrained_unlearn.evaluation.tofu import MissingSplitError
from constrained_unlearn.llm.generation import generate_batched

FAST = {"verbmem_max_new_tokens": 6, "knowmem_max_new_tokens": 5, "batch_size": 4}


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return build_llama(tok, seed=0)


@pytest.fixture(scope="module")
def retrain_dir(tmp_path_factory, tok):
    folder = tmp_path_factory.mktemp("retrain")
    write_retrain_log(build_llama(tok, seed=1), tok, muse_data(), folder, **FAST)
    return folder


def test_report_shapes_and_privleak_against_retrain_log(model, tok, retrain_dir, tmp_path) -> None:
    results = MuseEvaluator(model, tok, muse_data(), retrain_logs=retrain_dir, **FAST).evaluate(
        tmp_path
    )
    full = json.loads((tmp_path / "MUSE_EVAL.json").read_text())
    summary = json.loads((tmp_path / "MUSE_SUMMARY.json").read_text())
    assert set(full) == set(DEFAULT_MUSE_METRICS) | {"mia_min_k", "provenance"}
    assert set(summary) == set(DEFAULT_MUSE_METRICS) | {"bootstrap_ci", "provenance"}
    verb = full["forget_verbmem_ROUGE"]
    assert len(verb["value_by_index"]) == 2 and verb["score_scale"] == 1.0
    assert set(verb["value_by_index"]["0"]) == {"rougeL_f1", "input", "ground_truth", "generation"}
    know = full["forget_knowmem_ROUGE"]["value_by_index"]["1"]
    assert know["ground_truth"] == "a new library"
    assert know["input"].endswith("Question: What opened in the market town?\nAnswer: ")

    # Min-K% over the whole document (only BOS is context), k = 0.4, EOS-free last token dropped
    data = muse_data()
    side_scores = []
    for side in ("forget", "holdout"):
        seqs = [encode_text(tok, r["text"]) for r in data[f"privleak/{side}"]]
        stats = score_sequences(model, seqs, pad_token_id=tok.pad_token_id)
        side_scores.append(min_k_scores(stats.drop_last().log_probs, 0.4))
    auc = mia_auc(*side_scores)
    assert full["mia_min_k"]["agg_value"] == pytest.approx(auc)
    assert full["mia_min_k"]["auc_muse"] == pytest.approx(1 - auc)
    retrain = json.loads((retrain_dir / "MUSE_EVAL.json").read_text())["mia_min_k"]["agg_value"]
    expected = ((1 - auc) - (1 - retrain)) / (1 - retrain) * 100
    assert results["privleak"]["agg_value"] == pytest.approx(expected)


def test_knowmem_uses_few_shot_prompt_and_stop_strings(model, tok) -> None:
    data = muse_data()
    results = MuseEvaluator(model, tok, data, metrics=["forget_knowmem_ROUGE"], **FAST).evaluate()
    icl = [(r["question"], r["answer"]) for r in data["knowmem/forget_qa_icl"]]
    prompts = [build_knowmem_prompt(r["question"], icl) for r in data["knowmem/forget_qa"]]
    gens = generate_batched(
        model, tok, prompts, max_new_tokens=5, stop_strings=["\n\n", "\nQuestion", "Question:"]
    )
    expected = knowmem_scores(gens, [r["answer"] for r in data["knowmem/forget_qa"]])
    assert results["forget_knowmem_ROUGE"]["agg_value"] == pytest.approx(float(np.mean(expected)))


def test_privleak_with_explicit_constant_and_muse_original_scale(model, tok) -> None:
    ou = MuseEvaluator(
        model,
        tok,
        muse_data(),
        retrain_auc="news",
        metrics=["forget_verbmem_ROUGE", "privleak"],
        **FAST,
    ).evaluate()
    orig = MuseEvaluator(
        model,
        tok,
        muse_data(),
        retrain_auc=0.4772,
        convention="muse-original",
        metrics=["forget_verbmem_ROUGE", "privleak"],
        **FAST,
    ).evaluate()
    auc_muse = 1 - ou["mia_min_k"]["agg_value"]
    assert ou["privleak"]["agg_value"] == pytest.approx((auc_muse - 0.4772) / 0.4772 * 100)
    # whole MIA texts under both (fixture texts are short), so the same PrivLeak
    assert orig["privleak"]["agg_value"] == pytest.approx(ou["privleak"]["agg_value"])
    verb = orig["forget_verbmem_ROUGE"]
    per_example = [v["rougeL_f1"] for v in verb["value_by_index"].values()]
    assert verb["score_scale"] == 100.0
    assert verb["agg_value"] == pytest.approx(100 * np.mean(per_example))
    assert orig["provenance"]["convention"] == "muse-original"


def test_privleak_needs_a_reference(model, tok, retrain_dir) -> None:
    with pytest.raises(ValueError, match="retrain_logs=.*retrain_auc=.*skip_privleak"):
        MuseEvaluator(model, tok, muse_data(), **FAST).evaluate()
    results = MuseEvaluator(model, tok, muse_data(), metrics=["privleak"], **FAST).evaluate(
        skip_privleak=True
    )
    assert set(results) == {"provenance"}
    log = json.loads((retrain_dir / "MUSE_EVAL.json").read_text())
    log["provenance"]["convention"] = "muse-original"
    with pytest.raises(ProvenanceMismatchError, match="different convention"):
        MuseEvaluator(model, tok, muse_data(), retrain_logs=log, **FAST).evaluate()
    del log["provenance"]
    with pytest.raises(ProvenanceMismatchError, match="compat"):
        MuseEvaluator(model, tok, muse_data(), retrain_logs=log, **FAST).evaluate()
    with pytest.warns(UserWarning, match="no provenance"):
        MuseEvaluator(
            model,
            tok,
            muse_data(),
            retrain_logs=log,
            compat="open-unlearning",
            metrics=["privleak"],
            **FAST,
        ).evaluate()


def test_missing_split_and_empty_generation(tok) -> None:
    data = muse_data()
    del data["privleak/holdout"]
    with pytest.raises(MissingSplitError, match="'privleak/holdout'"):
        MuseEvaluator(build_llama(tok), tok, data, retrain_auc=0.5)
    nested = {
        "knowmem": {
            "forget_qa": data["knowmem/forget_qa"],
            "forget_qa_icl": data["knowmem/forget_qa_icl"],
        }
    }
    results = MuseEvaluator(
        eos_first_llama(tok), tok, nested, metrics=["forget_knowmem_ROUGE"], **FAST
    ).evaluate()
    items = results["forget_knowmem_ROUGE"]["value_by_index"].values()
    assert all(v["generation"] == "" and v["rougeL_f1"] == 0.0 for v in items)


def test_extraction_strength_and_optional_attacks(model, tok) -> None:
    metrics = [
        "extraction_strength",
        "exact_memorization",
        "mia_loss",
        "mia_zlib",
        "mia_min_k_plus_plus",
    ]
    results = MuseEvaluator(model, tok, muse_data(), metrics=metrics, **FAST).evaluate()
    es = [v["score"] for v in results["extraction_strength"]["value_by_index"].values()]
    assert len(es) == 2 and all(0 < s <= 1 for s in es)
    for m in metrics[2:]:
        assert 0.0 <= results[m]["auc"] <= 1.0
    with pytest.raises(ValueError, match="TOFU convention"):
        MuseEvaluator(model, tok, muse_data(), convention="tofu-original")


def test_retrain_log_of_the_evaluated_weights_is_refused(tok, tmp_path) -> None:
    """#13.6 for MUSE: PrivLeak against the model's own log is 0 by construction."""
    retrained = build_llama(tok, seed=5)
    write_retrain_log(retrained, tok, muse_data(), tmp_path, **FAST)
    with pytest.raises(ValueError, match="very weights under evaluation"):
        MuseEvaluator(
            retrained, tok, muse_data(), retrain_logs=tmp_path, metrics=["privleak"], **FAST
        ).evaluate()
    with pytest.warns(UserWarning, match="allow_self_reference=True"):
        results = MuseEvaluator(
            retrained,
            tok,
            muse_data(),
            retrain_logs=tmp_path,
            metrics=["privleak"],
            allow_self_reference=True,
            **FAST,
        ).evaluate()
    assert results["privleak"]["agg_value"] == pytest.approx(0.0, abs=1e-6)
