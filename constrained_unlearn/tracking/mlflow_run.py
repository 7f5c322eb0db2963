"""One MLflow run per unlearning run, with an honest end status.

* Parameters: the whole resolved config, flattened to ``section.key`` strings.
* Metrics: one ``log_batch`` request per optimiser step (never one request per metric: over
  HTTP each request costs ~0.5 s).
* Status: ``FINISHED`` on success, ``FAILED`` with the error text on an exception, ``KILLED`` on
  Ctrl-C (``KeyboardInterrupt``) — a failed run never looks successful.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from constrained_unlearn.engine.history import Callback, StepRecord

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_MAX_PARAM_LENGTH = 6000
_BATCH = 100


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` → ``{"a.b": "1", "c": "[1, 2]"}`` (strings, truncated)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, prefix=f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:_MAX_PARAM_LENGTH]
    return out


def _sanitize(key: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space / ; λ and other symbols are replaced
    return "".join(c if (c.isascii() and c.isalnum()) or c in "_-. /" else "_" for c in key)


class MlflowRun:
    """A context manager around one MLflow run.

    Args:
        experiment: experiment name (created if missing).
        run_name: the run's display name.
        tracking_uri: e.g. ``http://127.0.0.1:5000``; default ``$MLFLOW_TRACKING_URI`` or
            ``sqlite:///mlflow.db`` in the working folder.
        tags: run tags (method, solver, benchmark, split, model …).
    """

    def __init__(
        self,
        experiment: str = "constrained-unlearn",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.tracking import MlflowClient

        self.tracking_uri = (
            tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        )
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (
            found.experiment_id if found else self.client.create_experiment(experiment)
        )
        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={k: str(v) for k, v in (tags or {}).items()},
        )
        self.run_id: str = run.info.run_id
        self.status: str = "RUNNING"

    # -- logging --------------------------------------------------------------------------
    def log_params(self, config: Mapping[str, Any]) -> None:
        """Log a (nested) config as flattened parameters, in batches of 100."""
        from mlflow.entities import Param

        params = [Param(_sanitize(k), v) for k, v in flatten_params(config).items()]
        for i in range(0, len(params), _BATCH):
            self.client.log_batch(self.run_id, params=params[i : i + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log many metrics in one request (non-finite values are skipped)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [
            Metric(_sanitize(k), float(v), now, step or 0)
            for k, v in metrics.items()
            if v is not None and float(v) == float(v) and abs(float(v)) != float("inf")
        ]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        """Write ``data`` as JSON (or YAML for ``*.yaml``) and log it as an artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            if name.endswith((".yaml", ".yml")):
                import yaml

                path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
            else:
                path.write_text(json.dumps(data, indent=2, default=str))
            self.log_artifact(path)

    def callback(self) -> MlflowCallback:
        """An engine callback logging every step's record."""
        return MlflowCallback(self)

    # -- lifecycle ------------------------------------------------------------------------
    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        if self.status != "RUNNING":
            return
        if error:
            self.set_tags({"error": error[-5000:]})
        self.client.set_terminated(self.run_id, status=status)
        self.status = status

    def __enter__(self) -> MlflowRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("KILLED", error="interrupted (KeyboardInterrupt)")
        else:
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            self.end("FAILED", error=text)


class MlflowCallback(Callback):
    """Logs each :class:`StepRecord` (objective, values, violations, λ, lr, grad norm)."""

    def __init__(self, run: MlflowRun) -> None:
        self.run = run

    def on_step_end(self, engine: Any, record: StepRecord) -> None:
        if getattr(engine, "accelerator", None) is None or engine.accelerator.is_main_process:
            self.run.log_metrics({f"train/{k}": v for k, v in record.flat().items()}, record.step)
