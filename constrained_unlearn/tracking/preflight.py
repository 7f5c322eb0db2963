"""Check that the tracking store can be reached, before any compute (no MLflow import).

``check_tracking_store(uri)`` raises `TrackingStoreError` with one sentence naming the
URI, what is wrong and the fix: an unknown scheme (``sqllite:///x.db``), a sqlite/file store in a
folder that cannot be written, or an HTTP server that does not answer within ``timeout_s``.
"""

from __future__ import annotations

import difflib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

__all__ = [
    "DATABASE_SCHEMES",
    "DEFAULT_EXPERIMENT",
    "DEFAULT_TRACKING_URI",
    "TrackingStoreError",
    "check_tracking_store",
    "resolve_tracking_uri",
]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "constrained-unlearn"
"""The experiment ``unlearn``, ``demo`` and ``compare`` use when none is given."""

DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_KNOWN_SCHEMES = (*DATABASE_SCHEMES, "file", "http", "https", "databricks")


class TrackingStoreError(RuntimeError):
    """The MLflow tracking store cannot be used; the message names the URI and the fix."""


def resolve_tracking_uri(uri: str | None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _writable_folder(folder: Path) -> bool:
    existing = folder
    while (
        not existing.exists() and not existing.is_file()
    ):  # the store creates missing folders: check the first that exists
        if existing.parent == existing:
            return False
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)


def check_tracking_store(uri: str | None, timeout_s: float = 5.0) -> str:
    """Return the resolved URI if its store can be used; raise `TrackingStoreError`.

    Only cheap checks: the scheme is known, a local store's folder is writable, an HTTP server
    answers ``/health`` within ``timeout_s`` seconds.
    """
    resolved = resolve_tracking_uri(uri)
    parsed = urllib.parse.urlparse(resolved)
    scheme = parsed.scheme.split("+")[0].lower()
    off = "or turn tracking off (tracking.enabled=false)"
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):  # a plain folder
        scheme, folder = "file", Path(resolved)
    elif scheme == "file":
        folder = Path(urllib.request.url2pathname(parsed.path))
    elif scheme == "sqlite":
        db = resolved[len("sqlite:///") :] if resolved.startswith("sqlite:///") else parsed.path
        folder = Path(db).parent if db not in ("", ":memory:") else Path(".")
    elif scheme not in _KNOWN_SCHEMES:
        near = difflib.get_close_matches(scheme, _KNOWN_SCHEMES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise TrackingStoreError(
            f"tracking URI {resolved!r} has an unknown scheme {parsed.scheme!r}{hint}; use e.g. "
            f"sqlite:///mlflow.db, a folder, or http://127.0.0.1:5000, {off}"
        )
    else:
        folder = None
    if folder is not None:
        if not _writable_folder(folder.resolve()):
            raise TrackingStoreError(
                f"tracking URI {resolved!r}: the folder {str(folder) or '.'!r} cannot be written; "
                f"choose a writable location (--tracking-uri sqlite:///PATH/mlflow.db) {off}"
            )
        return resolved
    if scheme in ("http", "https"):
        url = resolved.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
                response.read(64)
        except urllib.error.HTTPError:
            return resolved  # something answers (an old server without /health, a proxy): usable
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            raise TrackingStoreError(
                f"the MLflow server at {resolved!r} does not answer ({reason}); start it "
                f"(mlflow server --host 127.0.0.1 --port {parsed.port or 5000}), fix the URI, "
                f"use a local store (--tracking-uri sqlite:///mlflow.db) {off}"
            ) from None
    return resolved
