"""Two CPU processes (gloo): λ is identical on both ranks and equal to one process."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def run_workers(tmp_path, nproc, batch, k):
    out = tmp_path / f"run{nproc}"
    # the workers import the package under test (this checkout), not an installed copy
    path = os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    # cache bytecode under /tmp even with PYTHONDONTWRITEBYTECODE: every fresh process would
    # otherwise recompile torch._dynamo and sympy from source (~7 s of CPU each)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "cu-test-pycache"))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", str(HERE / "ddp_worker.py"), str(out), str(batch), str(k),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in range(nproc)]


def test_two_processes_share_lambda_and_match_single_process(tmp_path):
    ranks = run_workers(tmp_path, nproc=2, batch=2, k=2)
    assert [r["num_processes"] for r in ranks] == [2, 2]  # a wrong launch runs alone, silently
    assert ranks[0]["lambda"] == ranks[1]["lambda"]
    (reference,) = run_workers(tmp_path, nproc=1, batch=4, k=2)
    assert reference["num_processes"] == 1
    assert ranks[0]["lambda"] == pytest.approx(reference["lambda"], abs=1e-6)
    for p, q in zip(ranks[0]["params"], reference["params"]):
        assert p == pytest.approx(q, abs=1e-6)


def test_a_launched_process_that_accelerate_runs_alone_is_refused(monkeypatch):
    # torchrun on a machine without a GPU and without ACCELERATE_USE_CPU=true: accelerate gives
    # each process a world of one, and every rank would run the whole job by itself
    from accelerate import Accelerator

    from constrained_unlearn.engine import LaunchError
    from constrained_unlearn.engine.runtime import check_launch

    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == 1
    check_launch(accelerator)  # not launched: fine
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(LaunchError, match="ACCELERATE_USE_CPU=true"):
        check_launch(accelerator)
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_launch(accelerator)
