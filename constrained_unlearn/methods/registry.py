"""Methods by name: ``get_method("npo", beta=0.05)``."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from constrained_unlearn.methods.altpo import AltPO
from constrained_unlearn.methods.base import Method
from constrained_unlearn.methods.distillation import CEU, UNDIAL
from constrained_unlearn.methods.gradient import GradAscent, GradDiff
from constrained_unlearn.methods.idk_dpo import IdkDPO
from constrained_unlearn.methods.npo import NPO, SimNPO
from constrained_unlearn.methods.pdu import PDU, PDUEntropy
from constrained_unlearn.methods.reweighted import WGA, SatImp
from constrained_unlearn.methods.rmu import RMU

__all__ = ["ALIASES", "METHODS", "get_method", "method_names", "register_method"]

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (
        GradAscent,
        GradDiff,
        NPO,
        SimNPO,
        IdkDPO,
        RMU,
        PDU,
        PDUEntropy,
        UNDIAL,
        CEU,
        SatImp,
        WGA,
        AltPO,
    )
}
"""Canonical name → class."""

ALIASES: dict[str, str] = {
    "ga": "grad-ascent",
    "gradascent": "grad-ascent",
    "gradient-ascent": "grad-ascent",
    "gd": "grad-diff",
    "graddiff": "grad-diff",
    "gradient-difference": "grad-diff",
    "idkdpo": "idk-dpo",
    "pdu-ent": "pdu-entropy",
    "ceu": "ce-u",
    "cross-entropy-unlearning": "ce-u",
    "weighted-gradient-ascent": "wga",
    "sat-imp": "satimp",
    "alt-po": "altpo",
    "alternate-preference-optimization": "altpo",
}


def register_method(cls: type[Method], *, aliases: tuple[str, ...] = ()) -> type[Method]:
    """Make ``cls`` selectable by its ``name`` (and ``aliases``) in ``get_method`` and configs.

    Raises ``ValueError`` when a name or alias is taken by another method.
    """
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"register_method takes a Method subclass, got {cls!r}")
    key = cls.name.strip().lower().replace("_", "-").replace(" ", "-")
    if key in ("", "base"):
        raise ValueError(f"{cls.__name__} needs its own `name` class attribute (got {cls.name!r})")
    if METHODS.get(key, cls) is not cls or key in ALIASES:
        raise ValueError(f"method name {key!r} is already taken")
    for alias in aliases:
        if alias in METHODS or ALIASES.get(alias, key) != key:
            raise ValueError(f"alias {alias!r} is already taken")
    METHODS[key] = cls
    ALIASES.update(dict.fromkeys(aliases, key))
    return cls


def method_names() -> list[str]:
    """The canonical method names, sorted."""
    return sorted(METHODS)


def get_method(name: str, **options: Any) -> Method:
    """Build the method called ``name`` with ``options`` (its dataclass fields).

    Names are case-insensitive; ``_`` and spaces count as ``-`` (``"Grad_Diff"`` →
    ``"grad-diff"``); a few aliases (``ga``, ``gd``, ``graddiff``, ``ceu`` …) are accepted.

    Raises:
        ValueError: unknown name (the message lists every name and the nearest match).
        TypeError: an option the method does not have (the message lists its options).
    """
    if not isinstance(name, str):
        raise TypeError(f"method name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = ALIASES.get(key, key)
    if key not in METHODS:
        near = difflib.get_close_matches(key, list(METHODS) + list(ALIASES), n=1)
        hint = f" Did you mean {ALIASES.get(near[0], near[0])!r}?" if near else ""
        raise ValueError(f"unknown method {name!r}; choose one of {method_names()}.{hint}")
    cls = METHODS[key]
    accepted = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"method {key!r} has no option(s) {unknown}; its options are {accepted}")
    return cls(**options)
