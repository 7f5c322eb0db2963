"""The scripts a GPU session relies on run end to end (on the CPU here, with tiny shapes)."""

from __future__ import annotations

import importlib.util
import json
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
    for variant in ("pdu-before", "pdu+fullhead", "pdu+chunked", "hf"):
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
    step = _load("step_benchmark")
    variants = ["pdu+grouped", "pdu+fused", "npo", "graddiff", "finetune", "pdu", "pdu-before"]
    rows = {row["variant"]: row for row in step.run_in_process(TINY, variants)}
    assert list(rows) == variants
    # the default (answer rows, fused AdamW) and the earlier step: the same first losses
    for a, b in zip(rows["pdu"]["losses"][0], rows["pdu-before"]["losses"][0]):
        assert a == pytest.approx(b, rel=1e-5)
    assert all(row["median_s"] > 0 and row["tokens_per_s"] > 0 for row in rows.values())
    # mini-TOFU QA pairs are 19-28 tokens: random batches pad, grouped ones pad less
    assert rows["pdu+grouped"]["padded_fraction"] < rows["pdu+fused"]["padded_fraction"]
    assert rows["pdu+fused"]["padded_fraction"] > 0.02


def test_step_benchmark_pair_mode_alternates_and_prints_ratios(monkeypatch, capsys):
    step = _load("step_benchmark")
    calls = []
    times = {"pdu-before": iter([1.0, 3.0, 1.5]), "pdu": iter([2.0, 2.0, 2.0])}

    def fake_run(variant, argv):  # the workers are exercised above; here the A/B bookkeeping
        calls.append(variant)
        assert "--pair" not in " ".join(argv) and "--repeats" not in " ".join(argv)
        return {
            "median_s": next(times[variant]),
            "cpu_median_s": 1.0,
            "losses": [[1.0, 2.0]],
            "padded_fraction": 0.1,
        }

    monkeypatch.setattr(step, "run_variant", fake_run)
    monkeypatch.setattr(
        sys, "argv", ["step_benchmark.py", "--pair", "pdu-before,pdu", "--repeats=3"]
    )
    step.main()
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert calls == ["pdu-before", "pdu"] * 3  # A B A B A B
    assert summary["pair"] == ["pdu-before", "pdu"]
    assert (summary["ratio_min"], summary["ratio_median"], summary["ratio_max"]) == (
        0.5,
        0.75,
        1.5,
    )


def test_step_benchmark_refuses_unknown_variants():
    step = _load("step_benchmark")
    assert step.parse_variant("pdu+chunked+grouped") == ("pdu", {"chunked", "grouped"})
    assert step.parse_variant("pdu-chunked") == ("pdu", {"chunked"})  # the earlier name
    assert step.parse_variant("pdu-before") == ("pdu", {"fullhead", "plainadam", "separate"})
    for bad in ("pdu+turbo", "sgd", "npo+chunked", "hf+grouped", "npo+fullhead"):
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


def test_startup_measures_both_modes():
    startup = _load("startup")
    parser = startup.build_parser()
    common = ["--preset=minitofu", "--size=tiny", "--threads=1"]
    for mode in ("given", "calibrated"):
        args = parser.parse_args(
            [*common, f"--epsilon={mode}", "--engine-option=calibration_batches=2"]
        )
        row = startup.measure(args)
        parts = row["tokenize_s"] + row["build_s"] + row["calibrate_s"] + row["first_step_s"]
        assert row["total_s"] == pytest.approx(parts, rel=1e-6)
        # ε given: no calibration pass (step 0's observation is the starting value);
        # calibrated: the engine option reached the engine
        assert row["calibration_batches"] == (0 if mode == "given" else 2)
        assert row["engine_options"] == {"calibration_batches": 2}
        assert row["forget_rows"] == 8 and row["batches_per_epoch"] == 2  # tiny: 2 authors × 4


def test_minitofu_model_uses_sdpa_attention():
    from constrained_unlearn.benchmarks.minitofu.model import ModelSpec, make_model

    class Tokenizer:
        bos_token_id, eos_token_id, pad_token_id = 0, 1, 2

        def __len__(self) -> int:
            return 64

    model = make_model(ModelSpec(hidden_size=16, intermediate_size=32), Tokenizer(), seed=0)
    assert model.config._attn_implementation == "sdpa"


def _summary(folder: Path, values: dict) -> Path:
    folder.mkdir()
    (folder / "TOFU_SUMMARY.json").write_text(json.dumps(values))
    return folder


def test_open_unlearning_comparison_flags_missing_and_distant_metrics(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "ou_compare", SCRIPTS / "open_unlearning" / "compare.py"
    )
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    ou = _summary(tmp_path / "ou", {"forget_quality": 0.25, "privleak": -60.0})
    near = _summary(tmp_path / "near", {"forget_quality": 0.250001, "privleak": -60.0003})
    assert compare.main([str(ou), str(near)]) == 0  # privleak: 5e-6 of its magnitude
    assert "| forget_quality | 0.25 | 0.250001 | 1.00e-06 |" in capsys.readouterr().out
    far = _summary(tmp_path / "far", {"forget_quality": 0.2501, "privleak": -60.0})
    assert compare.main([str(ou), str(far)]) == 1
    missing = _summary(tmp_path / "missing", {"forget_quality": 0.25})
    assert compare.main([str(ou), str(missing)]) == 1
    assert "| privleak | -60 | — | missing ✗ |" in capsys.readouterr().out
    muse_ou, muse_ours = tmp_path / "muse_ou", tmp_path / "muse_ours"
    for folder, value in ((muse_ou, 0.958333), (muse_ours, 0.958333)):
        folder.mkdir()
        (folder / "MUSE_SUMMARY.json").write_text(json.dumps({"forget_knowmem_ROUGE": value}))
    assert compare.main([str(muse_ou), str(muse_ours)]) == 0
    with pytest.raises(SystemExit):  # neither summary: a usage error, not a pass
        compare.main([str(tmp_path), str(tmp_path)])


def test_open_unlearning_scripts_parse_and_refuse_without_their_setup(tmp_path):
    import subprocess

    folder = SCRIPTS / "open_unlearning"
    for script in ("setup.sh", "common.sh", "eval.sh", "muse_eval.sh"):
        assert subprocess.run(["bash", "-n", str(folder / script)]).returncode == 0
    env = {"PATH": "/usr/bin:/bin", "OU_HOME": str(tmp_path / "none")}
    for script in ("eval.sh", "muse_eval.sh"):
        usage = subprocess.run(["bash", str(folder / script)], capture_output=True, text=True)
        assert usage.returncode == 2 and "usage:" in usage.stderr
        done = subprocess.run(
            ["bash", str(folder / script), str(tmp_path), str(tmp_path), str(tmp_path / "out")],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 2 and "run benchmarks/open_unlearning/setup.sh" in done.stderr
