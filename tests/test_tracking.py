"""MlflowRun + MlflowCallback against a real ``mlflow server`` and a local sqlite store.

The server starts (in its own process group) when the module starts, boots while the local
store tests run, and is stopped by killing its whole process group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from toy_problems import classifier_data, classifier_terms, linear_model

from constrained_unlearn.engine import EngineConfig, PairedData, UnlearningEngine
from constrained_unlearn.problem import ConstraintSpec
from constrained_unlearn.tracking import MlflowRun, flatten_params

torch.set_num_threads(1)

STEPS = 4
CONFIG = {"method": {"name": "pdu", "solver": "gda"}, "training": {"lr": 0.05, "epochs": 1}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``mlflow server`` on a free port with a sqlite store under ``root``."""

    def __init__(self, root: Path) -> None:
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = open(root / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        env = {
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                f"sqlite:///{root / 'x.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--workers",
                "1",
            ],
            cwd=root,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills the whole tree
        )
        self.root = root

    def wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = (self.root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}:\n{text}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"mlflow server did not answer /health within {timeout} s")

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL what is left after 10 s."""
        if self.group_alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the leader
            if not self.group_alive():
                break
            time.sleep(0.1)
        else:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_server")
    srv = Server(root)
    try:
        yield srv
    finally:
        srv.stop()
        assert not srv.group_alive(), "processes of the mlflow server survived"


@pytest.fixture(scope="module", autouse=True)
def _boot_server_early(server):
    """Start the server before the first test so it boots while the local tests run."""
    yield


@pytest.fixture(scope="module")
def local_store(tmp_path_factory) -> Path:
    """One local sqlite store for the module (creating one runs migrations, ~5 s)."""
    return tmp_path_factory.mktemp("mlflow_local")


@pytest.fixture
def local_uri(local_store, monkeypatch):
    monkeypatch.chdir(local_store)  # a sqlite store puts artifacts under ./mlruns
    return f"sqlite:///{local_store / 'local.db'}"


def _uri(kind, request) -> str:
    if kind == "sqlite":
        return request.getfixturevalue("local_uri")
    srv = request.getfixturevalue("server")
    srv.wait()
    return srv.uri


def _engine(run: MlflowRun) -> UnlearningEngine:
    forget, retain = classifier_data()
    data = PairedData(forget, retain, batch_size=8, seed=0)
    return UnlearningEngine(
        linear_model(),
        classifier_terms,
        data,
        constraints=[ConstraintSpec("retain", bound=1.5)],
        solver="gda",
        solver_kwargs={"multiplier_init": 1.0, "dual_lr": 0.5},
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05),
        config=EngineConfig(epochs=1, max_steps=STEPS, progress=False, cpu=True),
        callbacks=[run.callback()],
    )


# sqlite first: the server boots meanwhile
@pytest.mark.parametrize("kind", ["sqlite", "server"])
def test_run_is_logged_and_read_back(kind, request, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = _uri(kind, request)
    with MlflowRun(
        "tracking-test", run_name="toy", tracking_uri=uri, tags={"solver": "gda"}
    ) as run:
        run.log_params(CONFIG)
        history = _engine(run).fit()
        run.log_dict({"answer": 42}, "summary.json")
    client = MlflowClient(tracking_uri=uri)
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["solver"] == "gda"
    assert logged.data.params == flatten_params(CONFIG)
    assert logged.data.params["method.solver"] == "gda"

    points = client.get_metric_history(run.run_id, "train/objective")
    assert [m.step for m in sorted(points, key=lambda m: m.step)] == list(range(STEPS))
    assert len(history) == STEPS
    by_step = {m.step: m.value for m in points}
    for record in history:
        assert by_step[record.step] == pytest.approx(record.objective, rel=1e-6)
    lam = client.get_metric_history(run.run_id, "train/retain/multiplier")
    lam = sorted(lam, key=lambda m: m.step)
    assert [m.step for m in lam] == [r.step for r in history]
    assert [m.value for m in lam] == pytest.approx(
        [r.multipliers["retain"] for r in history], rel=1e-6
    )
    assert len({m.value for m in lam}) > 1  # λ moved under gda
    for key in ("train/retain/value", "train/retain/violation", "train/lr"):
        assert len(client.get_metric_history(run.run_id, key)) == STEPS

    artifacts = [a.path for a in client.list_artifacts(run.run_id)]
    assert "summary.json" in artifacts
    (tmp_path / "download").mkdir()
    local = client.download_artifacts(run.run_id, "summary.json", str(tmp_path / "download"))
    assert Path(local).read_text().replace(" ", "").replace("\n", "") == '{"answer":42}'


@pytest.mark.parametrize("kind", ["sqlite", "server"])
def test_failed_and_interrupted_runs_say_so(kind, request):
    from mlflow.tracking import MlflowClient

    uri = _uri(kind, request)
    client = MlflowClient(tracking_uri=uri)
    with pytest.raises(ValueError, match="boom"):
        with MlflowRun("tracking-test", run_name="fails", tracking_uri=uri) as failed:
            failed.log_metrics({"train/objective": 1.0}, step=0)
            raise ValueError("boom: retain loss exploded")
    info = client.get_run(failed.run_id)
    assert info.info.status == "FAILED"
    assert "ValueError: boom: retain loss exploded" in info.data.tags["error"]

    with pytest.raises(KeyboardInterrupt):
        with MlflowRun("tracking-test", run_name="ctrl-c", tracking_uri=uri) as killed:
            raise KeyboardInterrupt
    info = client.get_run(killed.run_id)
    assert info.info.status == "KILLED"
    assert "KeyboardInterrupt" in info.data.tags["error"]
