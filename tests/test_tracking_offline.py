"""Degraded tracking without a server: the offline log, its import, and MlflowRun's fallback
when a sqlite store refuses calls (the real-server test is in test_tracking.py)."""

from __future__ import annotations

import json
import warnings

import pytest

from constrained_unlearn.tracking import MlflowRun
from constrained_unlearn.tracking.mlflow_run import TrackingDegradedWarning, is_transient
from constrained_unlearn.tracking.offline import (
    OfflineLog,
    find_offline_folder,
    import_command,
    import_offline_run,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("offline_store")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # a sqlite store puts artifacts under ./mlruns
        yield f"sqlite:///{root / 'runs.db'}", root


def test_transient_errors_are_told_apart():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import (
        INTERNAL_ERROR,
        INVALID_PARAMETER_VALUE,
        RESOURCE_DOES_NOT_EXIST,
        TEMPORARILY_UNAVAILABLE,
    )

    assert is_transient(ConnectionRefusedError(111, "refused"))
    assert is_transient(TimeoutError())
    assert is_transient(MlflowException("API request failed", error_code=INTERNAL_ERROR))
    assert is_transient(MlflowException("503", error_code=TEMPORARILY_UNAVAILABLE))
    assert not is_transient(MlflowException("bad", error_code=INVALID_PARAMETER_VALUE))
    assert not is_transient(MlflowException("gone", error_code=RESOURCE_DOES_NOT_EXIST))
    assert not is_transient(ValueError("a bug"))


def test_offline_log_round_trip(tmp_path):
    log = OfflineLog(tmp_path / "mlflow_offline", {"run_id": "abc"})
    assert list(log.records()) == [] and log.pending() == 0
    assert not (tmp_path / "mlflow_offline").exists()  # nothing on disk until a record
    log.append("metrics", {"metrics": [["train/objective", 1.5, 1000, 3]]})
    log.append("end", {"status": "KILLED", "end_time": 2000})
    assert json.loads((tmp_path / "mlflow_offline" / "run.json").read_text()) == {"run_id": "abc"}
    assert [r["kind"] for r in log.records()] == ["metrics", "end"]
    assert log.pending() == 2
    log.mark_sent(1)
    assert (log.sent, log.pending()) == (1, 1)
    # a crash mid-write leaves a torn last line: skipped; a torn line before the end: an error
    with log.records_path.open("a") as f:
        f.write('{"kind": "tags", "ta')
    assert len(list(log.records())) == 2
    with log.records_path.open("a") as f:
        f.write('\n{"kind": "tags", "tags": {}}\n')
    with pytest.raises(ValueError, match="line 3 is not JSON"):
        list(log.records())
    with pytest.raises(ValueError, match="unknown record kind"):
        log.append("bogus", {})
    assert find_offline_folder(tmp_path) == tmp_path / "mlflow_offline"
    assert find_offline_folder(tmp_path / "mlflow_offline") == tmp_path / "mlflow_offline"
    with pytest.raises(FileNotFoundError, match="no offline MLflow log"):
        find_offline_folder(tmp_path / "nowhere")
    assert import_command("out/run", "http://h:5000") == (
        "python -m constrained_unlearn.tracking.offline import out/run --tracking-uri http://h:5000"
    )


class Flaky:
    """Stands in for ``client.log_batch`` / ``set_terminated``: fails while ``down``."""

    def __init__(self, real):
        self.real, self.down, self.calls = real, False, 0

    def __call__(self, *args, **kwargs):
        from mlflow.exceptions import MlflowException

        self.calls += 1
        if self.down:
            raise MlflowException("API request failed: Connection refused")
        return self.real(*args, **kwargs)


def test_run_falls_back_and_catches_up(store, tmp_path):
    from mlflow.tracking import MlflowClient

    uri, _ = store
    run = MlflowRun(
        "offline-test", run_name="flaky", tracking_uri=uri, offline_dir=tmp_path,
        reconnect_every_s=0.0,
    )  # fmt: skip
    flaky = Flaky(run.client.log_batch)
    run.client.log_batch = flaky  # type: ignore[method-assign]
    run.log_params({"method": {"name": "pdu"}})
    run.log_metrics({"train/objective": 0.0}, step=0)
    flaky.down = True
    with pytest.warns(TrackingDegradedWarning, match="stopped answering") as caught:
        for step in (1, 2, 3):
            run.log_metrics({"train/objective": float(step)}, step=step)
        run.set_tags({"note": "while down"})
        run.log_dict({"answer": 42}, "summary.json")
    assert len(caught) == 1  # warned once
    assert run.degraded
    log = OfflineLog(tmp_path / "mlflow_offline", {})
    kinds = [r["kind"] for r in log.records()]
    assert kinds == ["tags", "metrics", "metrics", "metrics", "tags", "artifact"]
    assert (tmp_path / "mlflow_offline" / "artifacts" / "000005" / "summary.json").exists()
    flaky.down = False
    run.log_metrics({"train/objective": 4.0}, step=4)  # reconnects: the backlog goes first
    assert log.pending() == 0
    run.end("FINISHED")
    client = MlflowClient(tracking_uri=uri)
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["note"] == "while down"
    assert logged.data.tags["tracking_degraded"] == "true"
    points = sorted(
        (m.step, m.value) for m in client.get_metric_history(run.run_id, "train/objective")
    )
    assert points == [(s, float(s)) for s in range(5)]
    assert [a.path for a in client.list_artifacts(run.run_id)] == ["summary.json"]


def test_refused_records_are_dropped_not_raised(store, tmp_path):
    uri, _ = store
    run = MlflowRun("offline-test", run_name="conflict", tracking_uri=uri, offline_dir=tmp_path)
    run.log_params({"training": {"lr": 0.1}})
    with pytest.warns(RuntimeWarning, match="MLflow refused a params record"):
        run.log_params({"training": {"lr": 0.2}})  # MLflow refuses changing a param
    assert not run.degraded and not (tmp_path / "mlflow_offline").exists()
    run.end("FINISHED")


def test_import_into_another_store(store, tmp_path):
    """A log made against one store, imported into a fresh one, creates the run there."""
    from mlflow.tracking import MlflowClient

    uri, root = store
    run = MlflowRun("offline-test", run_name="moved", tracking_uri=uri, offline_dir=tmp_path)
    run.client.log_batch = Flaky(run.client.log_batch)  # type: ignore[method-assign]
    run.client.log_batch.down = True  # type: ignore[attr-defined]
    run.client.set_terminated = Flaky(run.client.set_terminated)  # type: ignore[method-assign]
    run.client.set_terminated.down = True  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingDegradedWarning)
        run.log_metrics({"train/objective": 2.5, "train/retain/value": 0.1}, step=7)
        run.end("KILLED", error="interrupted")
    other = f"sqlite:///{root / 'other.db'}"
    new_id = import_offline_run(tmp_path, tracking_uri=other)
    assert new_id != run.run_id
    client = MlflowClient(tracking_uri=other)
    imported = client.get_run(new_id)
    assert imported.info.status == "KILLED"
    assert imported.info.run_name == "moved"
    assert imported.data.tags["error"] == "interrupted"
    assert imported.data.tags["imported_from"].endswith("mlflow_offline")
    (point,) = client.get_metric_history(new_id, "train/objective")
    assert (point.step, point.value) == (7, 2.5)
    assert client.get_experiment(imported.info.experiment_id).name == "offline-test"
