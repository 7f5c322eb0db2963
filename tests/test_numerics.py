"""Pinned CPU numerics (constrained_unlearn.numerics): what they set, when, and who keys on them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

from constrained_unlearn.numerics import (
    PINNED_ENVIRONMENT,
    describe_cpu_numerics,
    is_pinned,
    pin_cpu_numerics,
)

X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _unpinned_environment(**env: str) -> dict[str, str]:
    """This process's environment without the pinning variables, plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if k not in PINNED_ENVIRONMENT}, **env}


def _fresh_python(code: str, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=_unpinned_environment(**env),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


PIN_THEN_IMPORT = """
    import json, os
    from constrained_unlearn.numerics import pin_cpu_numerics, describe_cpu_numerics
    pinned = pin_cpu_numerics()
    import torch
    print(json.dumps({"pinned": pinned, **describe_cpu_numerics(),
                      "is_pinned": __import__("constrained_unlearn.numerics").numerics.is_pinned(),
                      "env": {k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}}))
"""


def test_pinning_before_torch_selects_the_avx2_kernels_on_x86_64():
    got = _fresh_python(PIN_THEN_IMPORT)
    if X86_64:
        assert got["pinned"] is True and got["is_pinned"] is True
        assert got["cpu_capability"] == "AVX2"
        assert got["mkl_cbwr"] == "AVX2"
    else:  # other architectures keep their own kernels and say so
        assert got["pinned"] is False
        assert got["env"] == {"ATEN_CPU_CAPABILITY": None, "MKL_CBWR": None}


def test_a_choice_the_user_made_is_kept_and_reported_as_not_pinned():
    got = _fresh_python(PIN_THEN_IMPORT, MKL_CBWR="COMPATIBLE")
    assert got["env"]["MKL_CBWR"] == "COMPATIBLE"
    assert got["mkl_cbwr"] == "COMPATIBLE"
    assert got["pinned"] is False and got["is_pinned"] is False


def test_after_torch_is_imported_nothing_is_changed():
    import torch  # noqa: F401  (the test process has it; the kernels are chosen)

    before = {k: os.environ.get(k) for k in PINNED_ENVIRONMENT}
    assert pin_cpu_numerics() is False
    assert {k: os.environ.get(k) for k in PINNED_ENVIRONMENT} == before


def test_builds_key_their_cache_on_the_kernels_in_force():
    from constrained_unlearn.benchmarks.minimuse.build import PRESETS as MUSE_PRESETS
    from constrained_unlearn.benchmarks.minimuse.build import (
        cache_key_inputs as muse_inputs,
    )
    from constrained_unlearn.benchmarks.minitofu import PRESETS, cache_key, cache_key_inputs

    inputs = cache_key_inputs(0, PRESETS["tiny"], "forget10")
    assert inputs["numerics"] == describe_cpu_numerics()
    other = {**inputs, "numerics": {**inputs["numerics"], "cpu_capability": "OTHER"}}
    assert cache_key(other) != cache_key(inputs)
    assert muse_inputs(0, MUSE_PRESETS["tiny"])["numerics"] == describe_cpu_numerics()


def test_the_demo_line_names_the_kernels_and_threads():
    from constrained_unlearn.recipes.demo import numerics_line

    line = numerics_line()
    described = describe_cpu_numerics()
    assert line.startswith(f"numerics: {described['cpu_capability']} kernels")
    assert "threads" in line


def test_the_demo_program_pins_its_kernels_and_prints_them(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "constrained_unlearn",
            "demo",
            "--size",
            "tiny",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--output-dir",
            str(tmp_path / "out"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "training.epochs=1",
        ],
        capture_output=True,
        text=True,
        env=_unpinned_environment(CONSTRAINED_UNLEARN_CACHE=str(tmp_path / "cache")),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| pdu (" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("numerics:"))
    if X86_64:
        assert line.startswith("numerics: AVX2 kernels, MKL AVX2, 2 threads (pinned")
    else:
        assert "this machine's own kernels" in line
    # the program ends without the interpreter's teardown (cli.process.finish): its MLflow
    # runs must still have been closed as finished by the exit handlers
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert runs and {r.info.status for r in runs} == {"FINISHED"}


def test_is_pinned_reads_a_description():
    pinned = {"machine": "x86_64", "cpu_capability": "AVX2", "mkl_cbwr": "AVX2"}
    assert is_pinned(pinned)
    assert not is_pinned({**pinned, "cpu_capability": "AVX512"})
    assert not is_pinned({**pinned, "mkl_cbwr": "native"})
    assert not is_pinned({**pinned, "machine": "arm64"})
