"""How the command line reports a failure: one or two lines, the fix, an exit status.

Exit status: ``2`` for a usage or input problem (a config key, a path, an id, a URI: fixed by
changing what was given), ``1`` for a runtime failure (a damaged checkpoint, a full disk, a
diverged run, a dependency that broke), ``130`` after an interrupt. The traceback is printed
only with ``--debug``.

Errors are recognised by class name and module (no import of MLflow, ``datasets`` or
``huggingface_hub`` here), so reporting a failure costs nothing at start-up and keeps working
when a class moves between modules.
"""

from __future__ import annotations

import errno
import traceback
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EXIT_INPUT", "EXIT_INTERRUPTED", "EXIT_RUNTIME", "Report", "describe"]

EXIT_RUNTIME = 1
EXIT_INPUT = 2
EXIT_INTERRUPTED = 130

_PACKAGE = str(Path(__file__).resolve().parents[1])

# the library's own error classes (by name): input problems and runtime failures
_INPUT = {
    "ConfigError",
    "TrackingStoreError",
    "OutputFolderError",
    "HubUnavailableError",
    "DatasetUnavailableError",
    "DataFileError",
    "VocabularyMismatchError",
    "TermsError",
    "LaunchError",
}
_RUNTIME = {"CheckpointError", "NonFiniteError"}
_HUB_FIX = (
    "check the id, pass a local folder instead, or set HF_HUB_OFFLINE=1 to use only the cache"
)


@dataclass(frozen=True)
class Report:
    """What the terminal shows for one failure.

    Attributes:
        status: the process exit status.
        message: one or two lines, starting ``error:``.
    """

    status: int
    message: str


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = err.args[0]  # KeyError's str() adds quotes
    return text.splitlines()[0] if text else type(err).__name__


def _names(err: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(err).__mro__}


def _module(err: BaseException) -> str:
    return type(err).__module__ or ""


def _raised_by_library(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is this package's code (a deliberate
    ``raise`` with a message written for the user) rather than a dependency's."""
    tb = err.__traceback__
    if tb is None:
        return _module(err).startswith("constrained_unlearn")
    last = traceback.extract_tb(tb)[-1]
    return str(Path(last.filename).resolve()).startswith(_PACKAGE)


def _os_error(err: OSError) -> Report:
    where = f" ({err.filename})" if getattr(err, "filename", None) else ""
    reason = err.strerror or _first_line(err)
    if err.errno == errno.ENOSPC:
        fix = "free disk space or choose another output.dir"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose a writable folder (output.dir=PATH) or fix the permissions"
    elif isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return Report(EXIT_INPUT, f"error: {reason}{where}; check the path")
    else:
        fix = "check the path and the disk, then run again"
    return Report(EXIT_RUNTIME, f"error: {reason}{where}\n  fix: {fix}")


def describe(err: BaseException) -> Report:
    """The `Report` of ``err``: its status and the line(s) to print."""
    names, module, line = _names(err), _module(err), _first_line(err)
    if isinstance(err, KeyboardInterrupt):
        return Report(EXIT_INTERRUPTED, "interrupted (a checkpoint, if any, was written first)")
    if names & _INPUT:
        return Report(EXIT_INPUT, f"error: {line}")
    if names & _RUNTIME:
        return Report(EXIT_RUNTIME, f"error: {line}")
    if module.startswith("mlflow"):
        return Report(
            EXIT_RUNTIME,
            f"error: MLflow: {line}\n  fix: check tracking.tracking_uri (--tracking-uri) and "
            "that the store or server is up, or turn tracking off with tracking.enabled=false",
        )
    if module.startswith("huggingface_hub") or "HfHubHTTPError" in names:
        return Report(EXIT_INPUT, f"error: Hugging Face hub: {line}\n  fix: {_HUB_FIX}")
    if module.startswith("datasets"):
        return Report(
            EXIT_INPUT,
            f"error: datasets: {line}\n  fix: check data.path (a hub id or a local folder) and "
            "its files; HF_HUB_OFFLINE=1 uses only the cache",
        )
    if module.startswith("yaml"):
        return Report(EXIT_INPUT, f"error: invalid YAML: {line}")
    if isinstance(err, ImportError):
        return Report(EXIT_INPUT, f"error: {line}")
    if isinstance(err, (ValueError, KeyError, TypeError, FileExistsError)) and _raised_by_library(
        err
    ):
        return Report(EXIT_INPUT, f"error: {line}")
    if isinstance(err, FileNotFoundError) and _raised_by_library(err):
        return Report(EXIT_INPUT, f"error: {line}")
    if isinstance(err, OSError):
        return _os_error(err)
    return Report(
        EXIT_RUNTIME,
        f"error: {type(err).__name__}: {line}\n  this looks like a bug or an unexpected failure "
        "of a dependency: rerun with --debug for the traceback and report it",
    )
