"""One MLflow run per unlearning run, with an honest end status, that never stops training.

* Parameters: the whole resolved config, flattened to ``section.key`` strings.
* Metrics: one ``log_batch`` request per optimiser step (never one request per metric: over
  HTTP each request costs ~0.5 s). Per constraint ``c``: ``train/c/value`` and its bound
  ``train/c/bound`` (ε) at the same step, so the two can be charted together.
* Tags MLflow's own fluent API would set (``mlflow.source.name``, ``mlflow.source.type``,
  ``mlflow.user``, ``mlflow.source.git.commit`` in a git checkout) plus the library, torch and
  Python versions and, once training starts, the world size. The experiment is tagged
  ``mlflow.experimentKind = custom_model_development`` so MLflow 3's UI opens it in its
  model-training view (not the GenAI one). Datasets: [`MlflowRun.log_dataset`][constrained_unlearn.tracking.MlflowRun.log_dataset].
* Status: ``FINISHED`` on success, ``FAILED`` with the error text on an exception, ``KILLED`` on
  Ctrl-C (``KeyboardInterrupt``) — a failed run never looks successful.

Tracking never kills training. HTTP requests retry briefly (MLflow's ``MLFLOW_HTTP_REQUEST_*``
variables are given short defaults unless the user set them: 2 retries, 10 s timeout, so a dead
server costs seconds, not the 7-retry, 120-s-timeout minutes of MLflow's defaults). When a call
still fails for a transient reason (connection refused, timeout, 5xx, 429, a locked database),
the run becomes *degraded*: one warning, and every later call is appended to an offline log in
``<offline_dir>/mlflow_offline/`` (`constrained_unlearn.tracking.offline`). Every
``reconnect_every_s`` seconds the server is tried again; when it answers, the backlog is sent
and logging goes on-line again. [`MlflowRun.end`][constrained_unlearn.tracking.MlflowRun.end] makes a last attempt, so the status is
set whenever the server is back by the end; otherwise ``python -m
constrained_unlearn.tracking.offline import FOLDER`` completes the run later. A call rejected
for a non-transient reason (a 4xx: e.g. a parameter logged twice with different values) is
dropped with a warning. Only the constructor raises: creating the run is the one request that
happens before any compute.
"""

from __future__ import annotations

import functools
import getpass
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from constrained_unlearn.engine.history import Callback, StepRecord
from constrained_unlearn.numerics import describe_cpu_numerics
from constrained_unlearn.tracking.preflight import (
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    TrackingStoreError,
    resolve_tracking_uri,
)

__all__ = [
    "DEFAULT_TRACKING_URI",
    "EXPERIMENT_KIND",
    "FAST_HTTP_SETTINGS",
    "MlflowCallback",
    "MlflowRun",
    "TrackingDegradedWarning",
    "flatten_params",
    "is_transient",
    "log_reference_run",
    "mlflow_ui_command",
]

EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
"""The experiment tag that makes MLflow 3's UI show the model-training (not GenAI) view."""

FAST_HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
"""Defaults set (``os.environ.setdefault``: a user's own values win) before the first request."""

_MAX_PARAM_LENGTH = 6000
_BATCH = 100
_TRANSIENT_CODES = frozenset(
    {
        "INTERNAL_ERROR",
        "TEMPORARILY_UNAVAILABLE",
        "REQUEST_LIMIT_EXCEEDED",
        "DEADLINE_EXCEEDED",
        "IO_ERROR",
        "ABORTED",
        "CANCELLED",
        "DATA_LOSS",
        "UNKNOWN",
    }
)
logger = logging.getLogger(__name__)


class TrackingDegradedWarning(UserWarning):
    """The tracking store stopped answering; the run logs to its offline folder meanwhile."""


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


def is_transient(err: BaseException) -> bool:
    """Whether a tracking call failed because the store is (for now) unreachable or busy.

    Transient: OS/network errors (``requests``' errors are ``OSError``), MLflow errors with an
    internal/unavailable/rate-limit code (what the REST client raises once its retries are
    spent, and what a 5xx or 429 maps to), and SQLAlchemy's ``OperationalError`` (a locked or
    vanished database). Not transient: MLflow's client errors (invalid parameter, missing
    resource …) and everything else.
    """
    if isinstance(err, OSError | TimeoutError):
        return True
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException):
        return str(err.error_code) in _TRANSIENT_CODES
    try:
        from sqlalchemy.exc import OperationalError
    except ImportError:  # pragma: no cover - mlflow depends on sqlalchemy
        return False
    return isinstance(err, OperationalError)


def _offline_module() -> ModuleType:
    """`constrained_unlearn.tracking.offline`, imported on first use (so that ``python -m
    constrained_unlearn.tracking.offline`` does not find it imported already)."""
    from constrained_unlearn.tracking import offline

    return offline


def _git_commit(folder: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as MLflow itself does
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def _library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("constrained-unlearn")
    except PackageNotFoundError:
        return "unknown"


def system_tags() -> dict[str, str]:
    """What MLflow's fluent ``start_run`` records, plus library, torch and Python versions and
    the CPU kernels in force (`constrained_unlearn.numerics`: runs on other kernels give other
    floats, so a comparison can tell them apart).

    ``mlflow.source.git.commit`` is the commit of the git checkout holding the entry-point
    script (else the working folder), as MLflow does; ``constrained_unlearn.git_commit`` the
    library's own when it runs from a checkout.
    """
    import torch

    entry = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else Path.cwd()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"
    tags = {
        "mlflow.source.name": str(entry),
        "mlflow.source.type": "LOCAL",
        "mlflow.user": user,
        "constrained_unlearn.version": _library_version(),
        "torch.version": str(torch.__version__),
        "python.version": platform.python_version(),
    }
    kernels = describe_cpu_numerics()
    tags["torch.cpu_capability"] = kernels["cpu_capability"]
    tags["mkl.cbwr"] = kernels["mkl_cbwr"]
    commit = _git_commit(entry.parent if entry.is_file() else Path.cwd())
    if commit:
        tags["mlflow.source.git.commit"] = commit
    library = _git_commit(Path(__file__).resolve().parent)
    if library:
        tags["constrained_unlearn.git_commit"] = library
    return tags


class MlflowRun:
    """A context manager around one MLflow run.

    Args:
        experiment: experiment name (created if missing, tagged as a model-training experiment).
        run_name: the run's display name.
        tracking_uri: e.g. ``http://127.0.0.1:5000``; default ``$MLFLOW_TRACKING_URI`` or
            ``sqlite:///mlflow.db`` in the working folder.
        tags: run tags (method, solver, benchmark, split, model …); added to
            `system_tags`.
        offline_dir: where the offline log goes if the store stops answering
            (``<offline_dir>/mlflow_offline/``); default ``./mlflow_offline/<run id>``. The
            recipe passes the run's output folder.
        reconnect_every_s: while degraded, how often the store is tried again.

    Attributes:
        run_id: the MLflow run id. ``client``: the ``MlflowClient``. ``status``: ``RUNNING``
            until [`end`][constrained_unlearn.tracking.MlflowRun.end]. ``degraded``: True once any call had to go to the offline log
            (stays True after a reconnect: the summary says tracking was interrupted).
        offline_folder: the offline log's folder (exists only once degraded).

    Raises:
        TrackingStoreError: the run cannot be created (the store does not answer); nothing has
            been computed yet at that point.
    """

    def __init__(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        offline_dir: str | os.PathLike[str] | None = None,
        reconnect_every_s: float = 30.0,
    ) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        for key, value in FAST_HTTP_SETTINGS.items():
            os.environ.setdefault(key, value)
        from mlflow.tracking import MlflowClient

        # imported here so that ``python -m constrained_unlearn.tracking.offline`` runs cleanly
        from constrained_unlearn.tracking.offline import OFFLINE_FOLDER, OfflineLog

        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        all_tags = {**system_tags(), **{k: str(v) for k, v in (tags or {}).items()}}
        try:
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                self.experiment_id = self.client.create_experiment(
                    experiment, tags={EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]}
                )
            else:
                self.experiment_id = found.experiment_id
                if EXPERIMENT_KIND[0] not in found.tags:  # never overwrite a user's choice
                    self.client.set_experiment_tag(self.experiment_id, *EXPERIMENT_KIND)
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        except Exception as err:
            if not is_transient(err):
                raise
            raise TrackingStoreError(
                f"cannot create an MLflow run at {self.tracking_uri!r} ({type(err).__name__}: "
                f"{str(err)[:300]}); start the server, use a local store (--tracking-uri "
                "sqlite:///mlflow.db) or turn tracking off (tracking.enabled=false)"
            ) from err
        self.run_id: str = run.info.run_id
        self.run_name = run.info.run_name
        self.experiment = experiment
        self.status: str = "RUNNING"
        self.degraded: bool = False
        self.reconnect_every_s = float(reconnect_every_s)
        base = Path(offline_dir) if offline_dir is not None else Path(OFFLINE_FOLDER) / self.run_id
        self.offline_folder = base / OFFLINE_FOLDER if offline_dir is not None else base
        self._offline = OfflineLog(
            self.offline_folder,
            {
                "tracking_uri": self.tracking_uri,
                "experiment": experiment,
                "experiment_id": self.experiment_id,
                "run_id": self.run_id,
                "run_name": self.run_name,
                "start_time": run.info.start_time,
                "tags": all_tags,
            },
        )
        self._online = True
        self._last_attempt = 0.0
        self._warned_rejected: set[str] = set()

    # -- the one path every call takes ------------------------------------------------------
    def _send(
        self, kind: str, payload: Mapping[str, Any], send: Callable[[], object], *, force=False
    ) -> bool:
        """Send now, or keep offline; True when the store accepted the call."""
        if not self._online and not self._reconnect(force=force):
            self._keep(kind, payload)
            return False
        try:
            send()
        except Exception as err:
            if not is_transient(err):
                self._reject(kind, err)
                return False
            self._go_offline(err)
            self._keep(kind, payload)
            return False
        return True

    def _keep(self, kind: str, payload: Mapping[str, Any]) -> None:
        if kind == "artifact":
            self._offline.keep_artifact(payload["path"], payload["artifact_path"])
        else:
            self._offline.append(kind, payload)

    def _reject(self, kind: str, err: BaseException) -> None:
        text = f"{type(err).__name__}: {err}"
        if text not in self._warned_rejected:
            self._warned_rejected.add(text)
            warnings.warn(
                f"MLflow refused a {kind} record of run {self.run_id} ({text[:500]}); it is "
                "dropped and training goes on",
                RuntimeWarning,
                stacklevel=4,
            )

    def _go_offline(self, err: BaseException) -> None:
        self._online = False
        self._last_attempt = time.monotonic()
        if not self.degraded:
            self.degraded = True
            self._offline.append("tags", {"tags": {"tracking_degraded": "true"}})
            warnings.warn(
                f"the MLflow store at {self.tracking_uri} stopped answering ({type(err).__name__}: "
                f"{str(err)[:200]}); training goes on and run {self.run_id} is logged to "
                f"{self.offline_folder} until the store is back (retried every "
                f"{self.reconnect_every_s:.0f} s). If it is still down at the end, import later "
                f"with: {_offline_module().import_command(self.offline_folder)}",
                TrackingDegradedWarning,
                stacklevel=4,
            )

    def _store_answers(self) -> bool:
        """A cheap probe (``/health`` with a 2 s timeout) for HTTP stores; True otherwise."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return True
        try:
            url = self.tracking_uri.rstrip("/") + "/health"
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                response.read(64)
        except urllib.error.HTTPError:
            return True  # something answers
        except (OSError, TimeoutError):
            return False
        return True

    def _reconnect(self, *, force: bool = False) -> bool:
        """Try the store again (at most every ``reconnect_every_s``); send the backlog."""
        now = time.monotonic()
        if not force and now - self._last_attempt < self.reconnect_every_s:
            return False
        self._last_attempt = now
        if not self._store_answers():
            return False
        sent = 0
        while True:
            try:
                sent += _offline_module().replay(self._offline, self.client, self.run_id)
                break
            except Exception as err:
                if is_transient(err):
                    return False
                self._reject("offline", err)  # a record the store refuses: skip it, go on
                self._offline.mark_sent(self._offline.sent + 1)
        self._online = True
        logger.info(
            "MLflow store %s answers again: %d offline records sent", self.tracking_uri, sent
        )
        return True

    # -- logging --------------------------------------------------------------------------
    def log_params(self, config: Mapping[str, Any]) -> None:
        """Log a (nested) config as flattened parameters, in batches of 100."""
        from mlflow.entities import Param

        flat = {_sanitize(k): v for k, v in flatten_params(config).items()}
        items = list(flat.items())
        for i in range(0, len(items), _BATCH):
            chunk = dict(items[i : i + _BATCH])
            params = [Param(k, v) for k, v in chunk.items()]
            self._send(
                "params",
                {"params": chunk},
                functools.partial(self.client.log_batch, self.run_id, params=params),
            )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log many metrics in one request (non-finite values are skipped)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [
            (_sanitize(k), float(v), now, step or 0)
            for k, v in metrics.items()
            if v is not None and float(v) == float(v) and abs(float(v)) != float("inf")
        ]
        for i in range(0, len(rows), 1000):
            chunk = rows[i : i + 1000]
            batch = [Metric(*row) for row in chunk]
            self._send(
                "metrics",
                {"metrics": [list(row) for row in chunk]},
                functools.partial(self.client.log_batch, self.run_id, metrics=batch),
            )

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        values = {k: str(v) for k, v in tags.items()}
        self._send(
            "tags",
            {"tags": values},
            lambda: self.client.log_batch(
                self.run_id, tags=[RunTag(k, v) for k, v in values.items()]
            ),
        )

    def log_dataset(
        self,
        name: str,
        digest: str,
        source: str,
        context: str = "train",
        *,
        source_type: str | None = None,
    ) -> None:
        """Record a dataset input of the run (MLflow's *Datasets used* column).

        Args:
            name: e.g. ``"minitofu/forget10"``.
            digest: a fingerprint of the data (e.g. a hash of the token ids); MLflow shows it.
            source: a local folder/file or a hub id.
            context: ``"train"``, ``"forget"``, ``"retain"``, ``"eval"`` … (the input's
                ``mlflow.data.context`` tag).
            source_type: default ``"local"`` when ``source`` exists on disk, else
                ``"hugging_face"``.
        """
        if not name or not digest:
            raise ValueError(
                f"log_dataset needs a name and a digest, got name={name!r}, digest={digest!r}"
            )
        path = Path(source)
        kind = source_type or ("local" if path.exists() else "hugging_face")
        where = {"uri": str(path.resolve())} if kind == "local" else {"path": source}
        record = {
            "name": name,
            "digest": str(digest)[:36],
            "source_type": kind,
            "source": json.dumps(where),
            "context": context,
        }

        def send() -> None:
            from mlflow.entities import Dataset, DatasetInput, InputTag

            dataset = Dataset(
                record["name"], record["digest"], record["source_type"], record["source"]
            )
            tags = [InputTag("mlflow.data.context", context)] if context else []
            self.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, tags=tags)])

        self._send("inputs", {"datasets": [record]}, send)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload one file (kept in the offline folder when the store is away)."""
        self._send(
            "artifact",
            {"path": str(path), "artifact_path": artifact_path},
            lambda: self.client.log_artifact(self.run_id, str(path), artifact_path),
        )

    def log_artifacts(
        self, folder: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Upload a folder's files (e.g. the saved model), kept offline when the store is away."""
        self._send(
            "artifact",
            {"path": str(folder), "artifact_path": artifact_path},
            lambda: self.client.log_artifacts(self.run_id, str(folder), artifact_path),
        )

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
        """Set the final status (once). Tries the store again first when degraded; if it is
        still away, the status goes to the offline log and the import command is printed."""
        if self.status != "RUNNING":
            return
        self.status = status
        if error:
            self.set_tags({"error": error[-5000:]})
        end_time = int(time.time() * 1000)
        sent = self._send(
            "end",
            {"status": status, "end_time": end_time},
            lambda: self.client.set_terminated(self.run_id, status=status, end_time=end_time),
            force=True,
        )
        if not sent and not self._online:
            warnings.warn(
                f"the MLflow store at {self.tracking_uri} is still away: run {self.run_id} "
                f"({status}) is complete in {self.offline_folder}; import it with: "
                f"{_offline_module().import_command(self.offline_folder)}",
                TrackingDegradedWarning,
                stacklevel=2,
            )

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
    """Logs each [`StepRecord`][constrained_unlearn.engine.StepRecord] (objective, values, bounds, violations, λ, lr, grad norm).

    ``train/<c>/bound`` is ε of constraint ``c`` (``engine.problem.bounds``), logged at every
    step next to ``train/<c>/value``. At the start of training the run gets a ``world_size`` tag
    (the engine's number of processes). Only the main process logs.
    """

    def __init__(self, run: MlflowRun) -> None:
        self.run = run

    @staticmethod
    def _is_main(engine: Any) -> bool:
        return getattr(engine, "accelerator", None) is None or engine.accelerator.is_main_process

    def on_train_begin(self, engine: Any) -> None:
        if not self._is_main(engine):
            return
        accelerator = getattr(engine, "accelerator", None)
        world = int(getattr(accelerator, "num_processes", 1) or 1)
        self.run.set_tags({"world_size": world})

    def on_step_end(self, engine: Any, record: StepRecord) -> None:
        if not self._is_main(engine):
            return
        metrics = {f"train/{k}": v for k, v in record.flat().items()}
        bounds = getattr(getattr(engine, "problem", None), "bounds", None) or {}
        if callable(bounds):
            bounds = bounds()
        for name in record.values:
            bound = bounds.get(name)
            if bound is None:  # no problem object: ε = value − violation (the engine logs both)
                bound = record.values[name] - record.violations[name]
            metrics[f"train/{name}/bound"] = float(bound)
        self.run.log_metrics(metrics, record.step)


def mlflow_ui_command(tracking_uri: str | None = None) -> str:
    """How to look at the runs: ``mlflow ui --backend-store-uri URI --host 127.0.0.1`` for a
    local store, ``open URL`` for a server."""
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1"


def log_reference_run(
    name: str,
    metrics: Mapping[str, float],
    *,
    digest: str,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Record a reference model's evaluation (``name``: ``"target"`` or ``"retain"``) as a
    finished run tagged ``reference=name``, so that ``compare`` draws it on the Pareto plot.

    ``metrics`` are logged as ``eval/<key>``. ``digest`` identifies the model (e.g. its weights
    hash, tag ``weights_sha256``): when the experiment already holds a reference run of that
    name and digest, nothing is logged and its id is returned.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        existing = client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.reference = '{name}' and tags.weights_sha256 = '{digest}'",
            max_results=1,
        )
        if existing:
            return str(existing[0].info.run_id)
    run_tags = {"reference": name, "method": name, "weights_sha256": digest, **(tags or {})}
    with MlflowRun(
        experiment, run_name=f"reference-{name}", tracking_uri=tracking_uri, tags=run_tags
    ) as run:
        run.log_metrics({f"eval/{k}": v for k, v in metrics.items()})
    return run.run_id
