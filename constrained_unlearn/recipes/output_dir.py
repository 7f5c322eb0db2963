"""The output folder a command writes to: checked before any compute (standard library only,
so a command can check it before importing the engine)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["OutputFolderError", "check_output_dir"]


class OutputFolderError(OSError):
    """The output folder cannot be written; the message names the folder and the fix."""


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Fail fast when the output folder cannot be written; writes nothing that stays.

    Probes by creating (and deleting) a temporary file in ``path`` or, when ``path`` does not
    exist yet, in its first existing ancestor.

    Raises:
        OutputFolderError: ``path`` is a file, lies under a file, or cannot be written.
    """
    target = Path(path).expanduser()
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    fix = "choose another folder with output.dir=PATH (or --output-dir) or fix its permissions"
    if probe.exists() and not probe.is_dir():
        raise OutputFolderError(
            f"output folder {str(target)!r} cannot be created: {str(probe)!r} is a file; {fix}"
        )
    try:
        fd, name = tempfile.mkstemp(prefix=".write-check-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise OutputFolderError(
            f"output folder {str(target)!r} cannot be written ({err.strerror or err}); {fix}"
        ) from None
    return target
