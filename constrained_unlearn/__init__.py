"""constrained_unlearn: machine unlearning as constrained optimization (primal-dual unlearning).

The top level names the few objects a user starts from; everything else lives in the layers
(``losses``, ``problem``, ``solvers``, ``engine``, ``llm``, ``classifier``, ``methods``,
``benchmarks``, ``evaluation``, ``tracking``)::

    from constrained_unlearn import ConstraintSpec, EngineConfig, PairedData, UnlearningEngine

Names are loaded lazily (PEP 562 module ``__getattr__``): ``import constrained_unlearn`` imports
neither torch nor any layer; the first access to ``constrained_unlearn.UnlearningEngine`` imports
``constrained_unlearn.engine``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ConstraintSpec",
    "EngineConfig",
    "PairedData",
    "Terms",
    "UnlearningEngine",
    "__version__",
    "get_method",
    "make_solver",
]

DISTRIBUTION = "constrained-unlearn"
"""The name the package is installed under (``pip install constrained-unlearn``)."""

# public name -> the public module that defines it
_EXPORTS: dict[str, str] = {
    "ConstraintSpec": "constrained_unlearn.problem",
    "EngineConfig": "constrained_unlearn.engine",
    "PairedData": "constrained_unlearn.engine",
    "Terms": "constrained_unlearn.engine",
    "UnlearningEngine": "constrained_unlearn.engine",
    "get_method": "constrained_unlearn.methods",
    "make_solver": "constrained_unlearn.solvers",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from constrained_unlearn.engine import EngineConfig, PairedData, Terms, UnlearningEngine
    from constrained_unlearn.methods import get_method
    from constrained_unlearn.problem import ConstraintSpec
    from constrained_unlearn.solvers import make_solver

    __version__: str


def _source_tree_version() -> str | None:
    """The ``version`` of ``pyproject.toml`` beside this package, when run from a source tree."""
    import re
    from pathlib import Path

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.M | re.S)
    if project is None or not re.search(rf'^name\s*=\s*"{DISTRIBUTION}"', project[1], re.M):
        return None
    version = re.search(r'^version\s*=\s*"([^"]+)"', project[1], flags=re.M)
    return version[1] if version else None


def _version() -> str:
    """The installed distribution's version; a source tree's ``pyproject.toml``; else ``0+unknown``."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return _source_tree_version() or "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
