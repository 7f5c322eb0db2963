"""What a run logs while its MLflow store cannot be reached, kept on disk and imported later.

When the tracking server goes away in the middle of a run, :class:`~constrained_unlearn.tracking.
MlflowRun` keeps every parameter, metric batch, tag, dataset input, artifact and the final status
in ``<folder>/mlflow_offline/``::

    run.json        where the run lives: tracking URI, experiment, run id and name
    records.jsonl   one JSON object per logging call, in order (see RECORD_KINDS)
    sent.json       {"sent": n}: how many records already reached the server
    artifacts/      copies of the artifacts that could not be uploaded

Each line of ``records.jsonl`` is ``{"kind": K, ...}`` with ``K`` one of

* ``params``  — ``{"params": {key: value}}``
* ``metrics`` — ``{"metrics": [[key, value, timestamp_ms, step], ...]}``
* ``tags``    — ``{"tags": {key: value}}``
* ``inputs``  — ``{"datasets": [{"name", "digest", "source_type", "source", "context"}]}``
* ``artifact``— ``{"file": path under artifacts/, "artifact_path": folder in the run or null}``
* ``end``     — ``{"status": "FINISHED" | "FAILED" | "KILLED", "end_time": ms}``

Replaying resumes after the last record the server accepted, so a record is never sent twice
(metric points keep their original timestamps and steps). Import with::

    python -m constrained_unlearn.tracking.offline import OUTPUT_FOLDER [--tracking-uri URI]

or `import_offline_run`. The run is filled in place when its id exists at the target
store; otherwise (another store) a new run is created in the experiment of the same name.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "OFFLINE_FOLDER",
    "RECORD_KINDS",
    "OfflineLog",
    "find_offline_folder",
    "import_command",
    "import_offline_run",
    "main",
    "replay",
]

OFFLINE_FOLDER = "mlflow_offline"
RECORD_KINDS = ("params", "metrics", "tags", "inputs", "artifact", "end")


class OfflineLog:
    """An append-only log of logging calls in ``folder`` (created on the first record).

    Args:
        folder: the ``mlflow_offline`` folder itself.
        meta: what ``run.json`` holds (tracking URI, experiment id and name, run id and name).
    """

    def __init__(self, folder: str | os.PathLike[str], meta: Mapping[str, Any]) -> None:
        self.folder = Path(folder)
        self.meta = dict(meta)

    @property
    def records_path(self) -> Path:
        return self.folder / "records.jsonl"

    def _open(self) -> None:
        if not (self.folder / "run.json").exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / "run.json").write_text(json.dumps(self.meta, indent=2))

    def append(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Write one record (flushed and fsync'ed: a crash right after keeps it)."""
        if kind not in RECORD_KINDS:
            raise ValueError(f"unknown record kind {kind!r}; expected one of {RECORD_KINDS}")
        self._open()
        line = json.dumps({"kind": kind, **payload}, default=str)
        with self.records_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def keep_artifact(self, path: str | os.PathLike[str], artifact_path: str | None) -> None:
        """Copy a file or folder under ``artifacts/`` and record it."""
        self._open()
        source = Path(path)
        number = sum(1 for _ in self.records()) if self.records_path.exists() else 0
        target = self.folder / "artifacts" / f"{number:06d}" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        self.append(
            "artifact",
            {"file": str(target.relative_to(self.folder)), "artifact_path": artifact_path},
        )

    def records(self) -> Iterator[dict[str, Any]]:
        """The records in order (a torn last line, from a crash mid-write, is skipped)."""
        if not self.records_path.exists():
            return
        lines = self.records_path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines) - 1:
                    return  # torn last line
                raise ValueError(
                    f"{self.records_path}: line {number + 1} is not JSON; the offline log is "
                    "damaged (fix or delete that line, then import again)"
                ) from None

    @property
    def sent(self) -> int:
        """How many records already reached the server."""
        path = self.folder / "sent.json"
        return int(json.loads(path.read_text())["sent"]) if path.exists() else 0

    def mark_sent(self, count: int) -> None:
        tmp = self.folder / "sent.json.tmp"
        tmp.write_text(json.dumps({"sent": count}))
        tmp.replace(self.folder / "sent.json")

    def pending(self) -> int:
        """Records not yet sent."""
        return max(0, sum(1 for _ in self.records()) - self.sent)


def send_record(client: Any, run_id: str, record: Mapping[str, Any], folder: Path) -> None:
    """Send one record to ``run_id`` through ``client`` (an ``MlflowClient``)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

    kind = record["kind"]
    if kind == "params":
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in record["params"].items()])
    elif kind == "metrics":
        metrics = [Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in record["metrics"]]
        client.log_batch(run_id, metrics=metrics)
    elif kind == "tags":
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in record["tags"].items()])
    elif kind == "inputs":
        datasets = [
            DatasetInput(
                Dataset(d["name"], d["digest"], d["source_type"], d["source"]),
                tags=[InputTag("mlflow.data.context", d["context"])] if d.get("context") else [],
            )
            for d in record["datasets"]
        ]
        client.log_inputs(run_id, datasets=datasets)
    elif kind == "artifact":
        local = folder / record["file"]
        if local.is_dir():
            client.log_artifacts(run_id, str(local), record.get("artifact_path"))
        else:
            client.log_artifact(run_id, str(local), record.get("artifact_path"))
    elif kind == "end":
        client.set_terminated(run_id, status=record["status"], end_time=record.get("end_time"))
    else:
        raise ValueError(
            f"unknown record kind {kind!r} in {folder}; expected one of {RECORD_KINDS}"
        )


def replay(
    log: OfflineLog,
    client: Any,
    run_id: str,
    *,
    start: int | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send the records from ``start`` (default: the first not yet sent); returns how many.

    The ``sent`` counter advances after every accepted record, so an interrupted replay
    continues where it stopped. Errors propagate.
    """
    first = log.sent if start is None else start
    count = 0
    for index, record in enumerate(log.records()):
        if index < first:
            continue
        send_record(client, run_id, record, log.folder)
        log.mark_sent(index + 1)
        count += 1
        if on_sent is not None:
            on_sent(index + 1)
    return count


def find_offline_folder(folder: str | os.PathLike[str]) -> Path:
    """``folder`` itself when it holds ``run.json``, else ``folder/mlflow_offline``."""
    path = Path(folder)
    for candidate in (path, path / OFFLINE_FOLDER):
        if (candidate / "run.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"no offline MLflow log in {str(path)!r} (looked for run.json there and in "
        f"{OFFLINE_FOLDER}/); pass the run's output folder"
    )


def import_command(folder: str | os.PathLike[str], tracking_uri: str | None = None) -> str:
    """The shell command that imports ``folder``."""
    uri = f" --tracking-uri {tracking_uri}" if tracking_uri else ""
    return f"python -m constrained_unlearn.tracking.offline import {folder}{uri}"


def import_offline_run(folder: str | os.PathLike[str], tracking_uri: str | None = None) -> str:
    """Import an offline log into MLflow; returns the id of the run that holds it.

    Args:
        folder: the run's output folder (or its ``mlflow_offline`` folder).
        tracking_uri: where to import (default: the URI the run was logging to).

    The run is completed in place when its id exists at ``tracking_uri`` (records the server
    already accepted are not sent again); otherwise a new run is created in the experiment of
    the same name (created if missing) and every record is sent.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    path = find_offline_folder(folder)
    meta = json.loads((path / "run.json").read_text())
    uri = tracking_uri or meta["tracking_uri"]
    client = MlflowClient(tracking_uri=uri)
    log = OfflineLog(path, meta)
    run_id = meta["run_id"]
    try:
        client.get_run(run_id)
        start = None
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        found = client.get_experiment_by_name(meta["experiment"])
        experiment_id = (
            found.experiment_id if found else client.create_experiment(meta["experiment"])
        )
        run = client.create_run(
            experiment_id,
            run_name=meta.get("run_name"),
            start_time=meta.get("start_time"),
            tags={**meta.get("tags", {}), "imported_from": str(path)},
        )
        run_id = run.info.run_id
        start = 0
    replay(log, client, run_id, start=start)
    return run_id


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m constrained_unlearn.tracking.offline import FOLDER [--tracking-uri URI]``."""
    parser = argparse.ArgumentParser(
        prog="python -m constrained_unlearn.tracking.offline",
        description="Import what a run logged while its MLflow server was unreachable.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="send an offline log to MLflow")
    imp.add_argument("folder", help="the run's output folder (holds mlflow_offline/)")
    imp.add_argument(
        "--tracking-uri", default=None, help="target store (default: the run's own URI)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        run_id = import_offline_run(args.folder, args.tracking_uri)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # the store is still unreachable, or refused a record
        print(f"error: import failed ({type(err).__name__}: {err}); run it again", file=sys.stderr)
        return 1
    print(f"imported into run {run_id} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
