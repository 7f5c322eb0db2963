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
from constrained_unlearn.tracking.mlflow_run import TrackingDegradedWarning
from constrained_unlearn.tracking.offline import OfflineLog
from constrained_unlearn.tracking.offline import main as offline_main

torch.set_num_threads(1)

STEPS = 4
CONFIG = {"method": {"name": "pdu", "solver": "gda"}, "training": {"lr": 0.05, "epochs": 1}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``mlflow server`` on a free port with a sqlite store under ``root``; `start` again
    after `stop` brings it back on the same port with the same store."""

    def __init__(self, root: Path) -> None:
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.root = root
        self.start()

    def start(self) -> None:
        """Start the server (returns at once; `wait` for it to answer)."""
        self.log = open(self.root / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        root = self.root
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

    def wait(self, timeout: float = 300.0) -> None:  # a loaded machine boots it slowly
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


def _engine(run: MlflowRun, steps: int = STEPS, extra=()) -> UnlearningEngine:
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
        config=EngineConfig(epochs=100, max_steps=steps, progress=False, cpu=True),
        callbacks=[run.callback(), *extra],
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
        run.log_dataset("toy/forget", "d1g3st", str(tmp_path), context="forget")
        history = _engine(run).fit()
        run.log_dict({"answer": 42}, "summary.json")
    assert run.degraded is False
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
    # ε as a step metric next to the constraint value
    bound = client.get_metric_history(run.run_id, "train/retain/bound")
    assert sorted(m.step for m in bound) == list(range(STEPS))
    assert {m.value for m in bound} == {1.5}

    # what MLflow's fluent API would record, plus versions and the world size
    tags = logged.data.tags
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]
    assert tags["mlflow.user"] and tags["world_size"] == "1"
    assert tags["torch.version"] == str(torch.__version__)
    assert tags["torch.cpu_capability"] == str(torch.backends.cpu.get_cpu_capability())
    assert tags["mkl.cbwr"] == os.environ.get("MKL_CBWR", "native")
    assert tags["constrained_unlearn.version"] != ""
    assert "tracking_degraded" not in tags
    experiment = client.get_experiment(logged.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (dataset_input,) = logged.inputs.dataset_inputs
    assert (dataset_input.dataset.name, dataset_input.dataset.digest) == ("toy/forget", "d1g3st")
    assert dataset_input.dataset.source_type == "local"
    assert [(t.key, t.value) for t in dataset_input.tags] == [("mlflow.data.context", "forget")]

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


def _steps(client, run_id: str, key: str = "train/objective") -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


class Chaos:
    """An engine callback that stops the server after step ``down``, ends ``side`` (another
    run) while it is down, starts the server again after ``up`` and waits for it after
    ``back``: the steps in between are logged while the server is away."""

    def __init__(self, server, side: MlflowRun, down=2, end_side=4, up=5, back=8) -> None:
        self.server, self.side = server, side
        self.down, self.end_side, self.up, self.back = down, end_side, up, back
        self.degraded_seconds = 0.0

    def on_train_begin(self, engine) -> None:
        pass

    def on_epoch_end(self, engine, epoch) -> None:
        pass

    def on_train_end(self, engine, history) -> None:
        pass

    def on_step_end(self, engine, record) -> None:
        if record.step <= self.end_side:
            self.side.log_metrics({"train/objective": record.objective}, step=record.step)
        if record.step == self.down:
            self.server.stop()
        if record.step == self.end_side:
            self.side.end("FINISHED")
        if record.step == self.up:
            self.server.start()
        if record.step == self.back:
            self.server.wait(timeout=600)


def test_server_stopped_and_restarted_mid_run(server, tmp_path):
    """The server dies after step 2 and is back for steps 9-11: training finishes, every step
    reaches MLflow exactly once, the status is set; a run ended while the server was down is
    completed by the import command. (Runs last in this module: it restarts the server.)"""
    from mlflow.tracking import MlflowClient

    server.wait()
    uri = server.uri
    steps = 12
    main = MlflowRun(
        "tracking-test", run_name="survives", tracking_uri=uri, offline_dir=tmp_path / "main",
        reconnect_every_s=0.0,
    )  # fmt: skip
    side = MlflowRun(
        "tracking-test", run_name="imported-later", tracking_uri=uri,
        offline_dir=tmp_path / "side", reconnect_every_s=3600.0,
    )  # fmt: skip
    chaos = Chaos(server, side)
    started = time.perf_counter()
    with pytest.warns(TrackingDegradedWarning) as caught:
        history = _engine(main, steps=steps, extra=[chaos]).fit()
    assert len(history) == steps  # training was not stopped by tracking
    main.end("FINISHED")
    texts = [str(w.message) for w in caught]
    assert any("stopped answering" in t and str(tmp_path / "main") in t for t in texts)
    assert any(
        "still away" in t and "constrained_unlearn.tracking.offline import" in t for t in texts
    )
    assert main.degraded and side.degraded

    client = MlflowClient(tracking_uri=uri)
    logged = client.get_run(main.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["tracking_degraded"] == "true"
    assert _steps(client, main.run_id) == [(r.step, pytest.approx(r.objective)) for r in history]
    bound = _steps(client, main.run_id, "train/retain/bound")
    assert bound == [(step, 1.5) for step in range(steps)]
    log = OfflineLog(tmp_path / "main" / "mlflow_offline", {})
    assert log.pending() == 0 and log.sent > 0  # the backlog went out during the run

    # the side run ended while the server was down: RUNNING there until imported
    assert client.get_run(side.run_id).info.status == "RUNNING"
    assert len(_steps(client, side.run_id)) == chaos.down + 1
    assert offline_main(["import", str(tmp_path / "side")]) == 0
    assert offline_main(["import", str(tmp_path / "side")]) == 0  # again: nothing sent twice
    imported = client.get_run(side.run_id)
    assert imported.info.status == "FINISHED"
    assert imported.data.tags["tracking_degraded"] == "true"
    expected = [(r.step, pytest.approx(r.objective)) for r in history][: chaos.end_side + 1]
    assert _steps(client, side.run_id) == expected
    assert time.perf_counter() - started < 900
