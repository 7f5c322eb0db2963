"""Exact resume after a crash: SIGKILLed runs continued in fresh processes (1 and 2 ranks).

The worker (resume_worker.py) first runs the problem uninterrupted, then again with
checkpoints, SIGKILLing itself a few steps after a checkpoint. Another process (the test's own
for one rank, a new torchrun for two) resumes from the newest complete checkpoint; weights, the λ trajectory of every constraint and the objective
must be bit-identical to the uninterrupted run (CPU, one thread).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import resume_worker
import torch
from accelerate import Accelerator

from constrained_unlearn.engine.checkpoint import list_checkpoints

HERE = Path(__file__).parent
NAMES = ("retain", "weight_norm", "bias_norm")


def _env() -> dict[str, str]:
    """One thread; bytecode cached under /tmp even where PYTHONDONTWRITEBYTECODE is set (each
    fresh process otherwise recompiles torch._dynamo and sympy from source: ~7 s of CPU)."""
    # the workers import the package under test (this checkout), not an installed copy
    path = os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "cu-test-pycache"))
    return env


def _launch(nproc: int, *args: str) -> subprocess.CompletedProcess:
    if nproc == 1:
        command = [sys.executable, str(HERE / "resume_worker.py"), *args]
    else:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", str(HERE / "resume_worker.py"), *args,
        ]  # fmt: skip
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=240)


def _assert_same_run(full: dict, resumed: dict) -> None:
    assert resumed["steps"] == full["steps"]
    for name in NAMES:
        assert resumed["lambda"][name] == full["lambda"][name], name  # exact float equality
        assert len(set(full["lambda"][name])) > 3, f"λ of {name} should move"
    assert resumed["objective"] == full["objective"]
    assert full["params"].keys() == resumed["params"].keys()
    for key, value in full["params"].items():
        assert torch.equal(value, resumed["params"][key]), key


def _dual_state_by_name(checkpoint: Path) -> dict[str, dict]:
    """The saved nuPI state, keyed by constraint name through the stored name list."""
    dual = torch.load(checkpoint / "dual.pt", weights_only=True)
    states = dual["dual_optimizer"]["state"]
    return {name: states[i] for i, name in enumerate(dual["dual_param_names"])}


def test_sigkilled_run_resumes_bit_identically_in_a_new_process(tmp_path):
    out, ckpt_dir = str(tmp_path / "run"), tmp_path / "ckpt"
    # 16 micro-batches per epoch, K = 2: 8 steps per epoch, 24 in all; checkpoints at 3, 6, 9
    # (keep_last=2 → 6 and 9 remain), killed after step 11, resumed from 9 (epoch 1, 2 in)
    killed = _launch(1, out, str(ckpt_dir), "full-then-kill", "11", "3")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    complete, incomplete = list_checkpoints(ckpt_dir)
    assert [p.name for p in complete] == ["checkpoint-6", "checkpoint-9"]
    assert incomplete == []
    saved_dual = _dual_state_by_name(ckpt_dir / "checkpoint-9")

    # resumed in this (pytest) process: another process than the one that wrote the checkpoint
    torch.set_num_threads(1)
    result = resume_worker.resume(Accelerator(cpu=True), str(ckpt_dir))
    full = torch.load(f"{out}.full.0.pt", weights_only=True)
    assert result["num_processes"] == 1
    assert result["resumed_from"].endswith("checkpoint-9")
    _assert_same_run(full, result)

    # the nuPI state of each multiplier, loaded in a fresh process, is the one saved under its
    # name (and the states differ, so a permutation would be caught)
    loaded = result["dual_at_load"]
    assert {k: v for k, v in loaded.items() if k != "_lambda"}.keys() == set(NAMES)
    for name in NAMES:
        assert saved_dual[name].keys() == loaded[name].keys()
        for key, value in saved_dual[name].items():
            assert torch.equal(value, loaded[name][key]), (name, key)
    firsts = [next(iter(saved_dual[name].values())) for name in NAMES]
    assert not torch.equal(firsts[0], firsts[1]) and not torch.equal(firsts[1], firsts[2])
    assert loaded["_lambda"] == {n: full["lambda"][n][8] for n in NAMES}  # λ after step 9


def test_two_process_run_killed_and_resumed_equals_uninterrupted(tmp_path):
    out, ckpt_dir = str(tmp_path / "ddp"), tmp_path / "ckpt"
    # 2 ranks × 8 micro-batches per epoch, K = 2: 4 steps per epoch, 12 in all. The checkpoint
    # at step 4 is taken after the last step of epoch 0 but before its end-of-epoch work;
    # both ranks are killed after step 6.
    killed = _launch(2, out, str(ckpt_dir), "full-then-kill", "6", "4")
    assert killed.returncode != 0
    complete, _ = list_checkpoints(ckpt_dir)
    assert [p.name for p in complete] == ["checkpoint-4"]
    assert sorted(p.name for p in complete[0].glob("rng-*.pt")) == ["rng-0.pt", "rng-1.pt"]
    saved_dual = _dual_state_by_name(complete[0])

    resumed = _launch(2, out, str(ckpt_dir), "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    full = [torch.load(f"{out}.full.{rank}.pt", weights_only=True) for rank in (0, 1)]
    result = [torch.load(f"{out}.resume.{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert [r["num_processes"] for r in result] == [2, 2]  # a wrong launch runs alone, silently
    assert full[0]["lambda"] == full[1]["lambda"]  # every rank holds the same λ
    for rank in (0, 1):
        assert result[rank]["resumed_from"].endswith("checkpoint-4")
        _assert_same_run(full[rank], result[rank])
    for rank in (0, 1):  # dual state on the right multiplier on every rank
        for name in NAMES:
            for key, value in saved_dual[name].items():
                assert torch.equal(value, result[rank]["dual_at_load"][name][key]), (rank, name)
