"""MUSE recipes on a tiny mini-MUSE: unlearn + evaluate, the demo, scalability/sustainability."""

from __future__ import annotations

import json
import math

import pytest
import torch

from constrained_unlearn.benchmarks.minimuse import build_minimuse
from constrained_unlearn.cli.main import build_parser, main
from constrained_unlearn.evaluation.provenance import weights_hash
from constrained_unlearn.recipes.config import ConfigError, load_config, parse_muse_split
from constrained_unlearn.recipes.muse_sequences import (
    evaluate_muse,
    load_corpus,
    run_sequence,
    unlearn_corpus,
)

FAST = (
    "data.benchmark=minimuse",
    "data.forget_split=forget",
    "data.retain_split=retain1",
    "data.chunk_length=64",
    "method.multiplier_init=10.0",
    "method.dual_lr=1.0",
    "training.epochs=1",
    "training.max_steps=2",
    "training.batch_size=2",
    "training.lr=1e-3",
    "tracking.enabled=false",
)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return build_minimuse(0, "tiny", cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def _config(mini, out, *extra):
    return load_config(
        None,
        [
            *FAST,
            f"model.name_or_path={mini.target_path}",
            f"data.path={mini.data_dir}",
            f"output.dir={out}",
            *extra,
        ],
    )


def test_muse_split_names_and_config_errors():
    assert parse_muse_split("forget") == ("raw", "forget")
    assert parse_muse_split("sust/forget_3") == ("sust", "forget_3")
    with pytest.raises(ConfigError, match="TOFU split"):
        load_config(None, ["data.benchmark=minimuse"])  # forget10 is TOFU's default
    with pytest.raises(ConfigError, match="no text corpus"):
        load_config(None, ["data.benchmark=minimuse", "data.forget_split=knowmem/forget_qa"])
    with pytest.raises(ConfigError, match="model.name_or_path"):
        load_config(None, ["data.benchmark=muse", "data.forget_split=forget"])
    with pytest.raises(ConfigError, match="chunk_length"):
        load_config(
            None, ["data.benchmark=minimuse", "data.forget_split=forget", "data.chunk_length=1"]
        )


def test_unlearn_a_few_steps_and_evaluate(mini, tmp_path):
    from constrained_unlearn.recipes.muse_demo import prepare_minimuse

    cfg = _config(mini, tmp_path / "pdu")
    source = str(mini.data_dir)
    model, tok = mini.load_target(), mini.load_tokenizer()
    before = weights_hash(model)
    result = unlearn_corpus(
        cfg,
        load_corpus(source, "forget"),
        load_corpus(source, "retain1", "x"),
        model=model,
        tokenizer=tok,
    )
    assert len(result.history) == 2
    assert weights_hash(result.model) != before
    assert (tmp_path / "pdu" / "model" / "model.safetensors").exists()
    summary = json.loads((tmp_path / "pdu" / "train_summary.json").read_text())
    assert summary["corpus"]["forget"]["documents"] == 3
    assert summary["corpus"]["forget"]["targets"] > 0
    # the reference evaluations land in the build's cache (the demo test below reuses them)
    base = prepare_minimuse(size="tiny", cache_dir=str(mini.root.parent))
    assert base.mini.key == mini.key
    assert math.isfinite(base.target["privleak"]["agg_value"])
    results = evaluate_muse(
        result.model,
        tok,
        base.eval_data,
        tmp_path / "eval",
        retrain_logs=base.retrain_log_dir,
        batch_size=16,
    )
    for key in ("forget_verbmem_ROUGE", "forget_knowmem_ROUGE", "retain_knowmem_ROUGE"):
        assert 0.0 <= results[key]["agg_value"] <= 1.0
    assert math.isfinite(results["privleak"]["agg_value"])
    assert (tmp_path / "eval" / "MUSE_SUMMARY.json").exists()


def test_sust_chains_models_and_scal_restarts_from_the_target(mini, tmp_path):
    cfg = _config(mini, tmp_path / "unused", "training.max_steps=1", "method.epsilon=50.0")
    source = str(mini.data_dir)
    target_hash = weights_hash(mini.load_target())
    sust = run_sequence("sust", cfg, tmp_path, source=source, eval_data={})
    scal = run_sequence("scal", cfg, tmp_path, source=source, eval_data={}, requests=[1, 2])
    folders = [r.folder for r in sust.requests + scal.requests]
    assert len(set(folders)) == 6
    for r in sust.requests + scal.requests:
        assert r.folder == tmp_path / r.kind / f"forget_{r.k}"
        assert (r.folder / "model" / "model.safetensors").exists()
        stored = json.loads((r.folder / "request.json").read_text())
        assert stored["forget_split"] == f"{r.kind}/forget_{r.k}"
        assert stored["final_weights"] == r.final_weights
    # sustainability: request k starts where request k-1 ended; each trains on its own fold
    assert sust.requests[0].start_weights == target_hash
    for prev, cur in zip(sust.requests, sust.requests[1:]):
        assert cur.start_weights == prev.final_weights != cur.final_weights
        assert cur.start_from == str(prev.folder)
    assert len({r.forget_fingerprint for r in sust.requests}) == 4
    assert [r.forget_documents for r in sust.requests] == [3, 3, 3, 3]
    # scalability: every request from the target, nested folds
    assert {r.start_weights for r in scal.requests} == {target_hash}
    assert [r.forget_documents for r in scal.requests] == [3, 6]
    assert "sust/forget_4" in sust.table and (tmp_path / "scal" / "table.md").exists()
    # a request never overwrites another run's folder unless asked
    with pytest.raises(FileExistsError, match="overwrite"):
        run_sequence("sust", cfg, tmp_path, source=source, eval_data={}, requests=[1])
    again = run_sequence(
        "sust", cfg, tmp_path, source=source, eval_data={}, requests=[1], overwrite=True
    )
    assert again.requests[0].start_weights == target_hash
    with pytest.raises(ValueError, match="chain"):
        run_sequence("sust", cfg, tmp_path / "x", source=source, eval_data={}, requests=[2])


def test_cli_dispatch_and_muse_demo(mini, tmp_path, capsys):
    parser = build_parser()
    assert parser.parse_args(["demo"]).benchmark == "minitofu"
    assert parser.parse_args(["demo", "--benchmark", "muse"]).benchmark == "muse"
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    code = main(
        [
            "demo",
            "--benchmark",
            "muse",
            "--size",
            "tiny",
            "--cache-dir",
            str(mini.root.parent),
            "--output-dir",
            str(tmp_path / "demo"),
            "training.max_steps=2",
            "tracking.enabled=false",
        ]
    )
    assert code == 0
    assert torch.get_num_threads() == 1  # the demo's 2 threads do not outlive it in our process
    torch.set_num_threads(threads_before)
    printed = capsys.readouterr().out
    assert "numerics: " in printed and "2 threads" in printed
    for column in ("VerbMem forget", "KnowMem forget", "KnowMem retain", "PrivLeak"):
        assert column in printed
    assert "| pdu (gda) |" in printed and "| retrained |" in printed
    assert (tmp_path / "demo" / "pdu" / "eval" / "MUSE_EVAL.json").exists()
    assert (mini.root / "evals" / "target" / "MUSE_EVAL.json").exists()
