"""#13.4 and #16 in the evaluators: the tokenization option, its provenance, loading only what
the metric table needs, rounded summaries."""

from __future__ import annotations

import json

import pytest
from test_evaluator_fixtures import FORGET, build_llama, build_tokenizer, tofu_data

from constrained_unlearn.benchmarks.tofu import tofu_eval_data
from constrained_unlearn.evaluation.provenance import ProvenanceMismatchError
from constrained_unlearn.evaluation.report import format_number, format_summary
from constrained_unlearn.evaluation.scoring import encode_pair
from constrained_unlearn.evaluation.tofu import TofuEvaluator, required_configs, write_retain_log
from constrained_unlearn.llm.tokenization import PromptTemplate, encode_qa

FAST = {"max_new_tokens": 4, "batch_size": 8, "metrics": ["forget_Q_A_Prob", "mia_min_k"]}


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return build_llama(tok, seed=0)


def test_convention_default_is_joint_and_separate_is_an_option(model, tok) -> None:
    joint = TofuEvaluator(model, tok, tofu_data(), **FAST).evaluate()
    separate = TofuEvaluator(model, tok, tofu_data(), tokenization="separate", **FAST).evaluate()
    assert joint["provenance"]["scoring"]["tokenization"] == "joint"
    assert joint["provenance"]["convention_settings"]["tokenization"] == "joint"
    assert separate["provenance"]["scoring"]["tokenization"] == "separate"
    assert joint["provenance"]["cache_key"] != separate["provenance"]["cache_key"]
    # the per-question losses are those of the joint / separate encodings of each pair
    for results, mode in ((joint, "joint"), (separate, "separate")):
        first = results["forget_Q_A_Prob"]["value_by_index"]["0"]["avg_loss"]
        seq = encode_pair(
            tok,
            FORGET[0]["question"],
            FORGET[0]["answer"],
            template=PromptTemplate(),
            max_length=512,
            tokenization=mode,
        )
        assert (
            seq.input_ids
            == encode_qa(
                tok, FORGET[0]["question"], FORGET[0]["answer"], tokenization=mode
            ).input_ids
        )
        import torch

        with torch.no_grad():
            logits = model(input_ids=torch.tensor([seq.input_ids])).logits[0]
        lp = torch.log_softmax(logits[:-1].double(), -1)
        targets = torch.tensor(seq.input_ids[1:])
        nll = -lp.gather(-1, targets[:, None])[seq.prompt_length - 1 :, 0].mean()
        assert first == pytest.approx(float(nll), rel=1e-5)
    assert (
        joint["forget_Q_A_Prob"]["value_by_index"]["0"]["avg_loss"]
        != separate["forget_Q_A_Prob"]["value_by_index"]["0"]["avg_loss"]
    )
    with pytest.raises(ValueError, match="tokenization='one'"):
        TofuEvaluator(model, tok, tofu_data(), tokenization="one", **FAST)


def test_retain_log_of_the_other_tokenization_is_refused(model, tok, tmp_path) -> None:
    retain = build_llama(tok, seed=1)
    write_retain_log(retain, tok, tofu_data(), tmp_path, tokenization="separate", **FAST)
    metrics = {**FAST, "metrics": ["forget_quality"]}
    with pytest.raises(ProvenanceMismatchError, match="different tokenization"):
        TofuEvaluator(model, tok, tofu_data(), retain_logs=tmp_path, **metrics).evaluate()
    TofuEvaluator(
        model, tok, tofu_data(), retain_logs=tmp_path, tokenization="separate", **metrics
    ).evaluate()


def test_required_configs_follow_the_metric_table() -> None:
    assert required_configs(["forget_Q_A_Prob"]) == ["forget10_perturbed"]
    assert required_configs(["privleak"], forget_split="forget05", holdout_split="holdout05") == [
        "forget05_perturbed",
        "holdout05",
    ]
    assert required_configs() == [
        "forget10_perturbed",
        "retain_perturbed",
        "real_authors_perturbed",
        "world_facts_perturbed",
        "holdout10",
    ]
    with pytest.raises(ValueError, match="unknown metric"):
        required_configs(["forget_rouge"])


def test_tofu_eval_data_reads_only_the_named_local_configs(tmp_path) -> None:
    data = tofu_data()
    with open(tmp_path / "forget10_perturbed.jsonl", "w") as fh:
        for row in data["forget10_perturbed"]:
            fh.write(json.dumps(row) + "\n")
    (tmp_path / "holdout10").mkdir()
    (tmp_path / "holdout10" / "train.json").write_text(json.dumps(data["holdout10"]))
    out = tofu_eval_data(tmp_path, ["forget10_perturbed", "holdout10"])
    assert out == {k: data[k] for k in ("forget10_perturbed", "holdout10")}
    (tmp_path / "retain_perturbed.jsonl").write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match="lacks column"):
        tofu_eval_data(tmp_path, ["retain_perturbed"])
    with pytest.raises(FileNotFoundError):
        tofu_eval_data(tmp_path, ["world_facts_perturbed"])
    with pytest.raises(ValueError, match="unknown TOFU config"):
        tofu_eval_data(tmp_path, ["forget11"])


def test_summary_numbers_are_rounded() -> None:
    assert format_number(0.8650661663285072) == "0.8651"
    assert format_number(8.448372017533173e-11) == "8.45e-11"
    assert format_number(-99.99999997621879) == "-100.0000"
    assert format_number(float("nan")) == "nan"
    text = format_summary(
        {
            "forget_quality": {"agg_value": 1.7e-9},
            "model_utility": {"agg_value": 0.63123},
            "provenance": {},
        }
    )
    assert text.splitlines() == [
        f"{'forget_quality':32s} 1.70e-09",
        f"{'model_utility':32s} 0.6312",
    ]
