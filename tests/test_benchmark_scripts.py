"""The scripts a GPU session relies on run end to end (on the CPU here, with tiny shapes)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_passes_on_the_cpu(capsys):
    gpu_check = _load("gpu_check")
    assert gpu_check.main(["--device", "cpu", "--bench", "none"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    checks = {line["check"]: line for line in lines if "check" in line}
    assert set(checks) == {"chunked-fp32", "chunked-bf16", "engine-bf16", "accumulation"}
    assert all(line["ok"] for line in checks.values()), checks
    assert checks["accumulation"]["lambda_max_err"] < 1e-5


def test_gpu_check_measurements_run_tiny_on_the_cpu():
    gpu_check = _load("gpu_check")
    gpu_check.DEVICE = "cpu"
    rows = gpu_check.run_benchmarks("tiny", "cpu")
    bench = {row["variant"]: row for row in rows}
    assert set(bench) == set(gpu_check.BENCH_VARIANTS.split(","))
    assert all(row["ok"] and row["peak_mib"] >= 0 for row in bench.values()), bench
    # the library's PDU, its memory-lean variants and the Trainer-style reference compute the
    # same first-step losses from the same model and batches
    first = bench["pdu"]["losses"][0]
    for variant in ("pdu+chunked", "pdu+selected", "hf"):
        assert bench[variant]["losses"][0] == pytest.approx(first, rel=1e-4), variant
    assert "--preset=llama-3.2-1b" in gpu_check.BENCH_ARGS["full"]


def test_peak_tflops_names_known_devices_only():
    gpu_check = _load("gpu_check")
    assert gpu_check.peak_tflops("NVIDIA H200") == 989.0
    assert gpu_check.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gpu_check.peak_tflops("Some Future Accelerator") is None


TINY = [
    "--hidden=32",
    "--layers=1",
    "--heads=2",
    "--batch=2",
    "--steps=4",
    "--warmup=1",
    "--threads=1",
]


def test_step_benchmark_runs_with_tiny_shapes_on_mini_tofu_data():
    # grouped batching on the real mini-TOFU lengths, the fused forward and NPO's reference
    variants = "pdu+grouped,pdu+fused,npo,graddiff,finetune"
    command = [
        sys.executable,
        str(SCRIPTS / "step_benchmark.py"),
        *TINY,
        f"--variants={variants}",
        "--in-process",
        "--json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {row["variant"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert list(rows) == variants.split(",")
    assert all(row["median_s"] > 0 and row["tokens_per_s"] > 0 for row in rows.values())
    # mini-TOFU QA pairs are 19-28 tokens: random batches pad, grouped ones pad less
    assert rows["pdu+grouped"]["padded_fraction"] < rows["pdu+fused"]["padded_fraction"]
    assert rows["pdu+fused"]["padded_fraction"] > 0.02


def test_step_benchmark_pair_mode_prints_a_ratio():
    command = [
        sys.executable,
        str(SCRIPTS / "step_benchmark.py"),
        *TINY,
        "--data=synthetic",
        "--vocab=256",
        "--seq=12",
        "--pair=pdu+selected,pdu",
        "--repeats=1",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["pair"] == ["pdu+selected", "pdu"]
    assert summary["ratio_min"] <= summary["ratio_median"] <= summary["ratio_max"]
    assert summary["a_losses"][0] == pytest.approx(summary["b_losses"][0], rel=1e-4)


def test_step_benchmark_refuses_unknown_variants():
    step = _load("step_benchmark")
    assert step.parse_variant("pdu+chunked+grouped") == ("pdu", {"chunked", "grouped"})
    assert step.parse_variant("pdu-chunked") == ("pdu", {"chunked"})  # the earlier name
    for bad in ("pdu+turbo", "sgd", "npo+chunked", "hf+grouped"):
        with pytest.raises(SystemExit):
            step.parse_variant(bad)


def test_hf_reference_updates_the_multiplier_inside_compute_loss():
    import torch

    ref = _load("hf_trainer_reference")
    logits = torch.tensor([[[3.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 6.0, 0.0]]])
    labels = torch.tensor([[-100, 5, -100]])  # only position 0 predicts an answer token
    # margin of position 0: max 3 − mean 1 = 2 → squared 4
    assert ref.margin_loss_on_answers(logits, labels).item() == pytest.approx(4.0)
    labels = torch.tensor([[-100, 5, 7]])  # positions 0 and 1: (4 + 0) / 2
    assert ref.margin_loss_on_answers(logits, labels).item() == pytest.approx(2.0)


def test_startup_script_times_both_modes():
    command = [
        sys.executable,
        str(SCRIPTS / "startup.py"),
        "--preset=minitofu",
        "--size=tiny",
        "--forget=forget10",
        "--threads=1",
        "--engine-option=calibration_batches=2",
        "--json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {row["epsilon"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert set(rows) == {"given", "calibrated"}
    for row in rows.values():
        parts = row["tokenize_s"] + row["build_s"] + row["calibrate_s"] + row["first_step_s"]
        assert row["total_s"] == pytest.approx(parts, rel=1e-6)
        assert row["calibration_batches"] == 2  # the engine option reached the engine
        assert row["engine_options"] == {"calibration_batches": 2}


def test_minitofu_model_uses_sdpa_attention():
    from constrained_unlearn.benchmarks.minitofu.model import ModelSpec, make_model

    class Tokenizer:
        bos_token_id, eos_token_id, pad_token_id = 0, 1, 2

        def __len__(self) -> int:
            return 64

    model = make_model(ModelSpec(hidden_size=16, intermediate_size=32), Tokenizer(), seed=0)
    assert model.config._attn_implementation == "sdpa"
