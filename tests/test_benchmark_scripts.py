"""The scripts a GPU session relies on run end to end (on the CPU here, with tiny shapes)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_passes_on_the_cpu(capsys):
    gpu_check = _load("gpu_check")
    assert gpu_check.main(["--device", "cpu"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    checks = {line["check"]: line for line in lines if "check" in line}
    assert set(checks) == {"chunked-fp32", "chunked-bf16", "engine-bf16", "accumulation"}
    assert all(line["ok"] for line in checks.values()), checks
    assert checks["accumulation"]["lambda_max_err"] < 1e-5


def test_step_benchmark_runs_with_tiny_shapes():
    variants = "pdu-chunked"  # the engine, CausalLMTerms and the fused loss; one subprocess
    command = [
        sys.executable,
        str(SCRIPTS / "step_benchmark.py"),
        "--hidden=32",
        "--layers=1",
        "--heads=2",
        "--vocab=256",
        "--batch=2",
        "--seq=16",
        "--steps=5",
        "--threads=1",
        f"--variants={variants}",
        "--json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["variant"] for row in rows] == variants.split(",")
    assert all(row["median_s"] > 0 and row["tokens_per_s"] > 0 for row in rows)
