"""Benchmarks: TOFU and MUSE through ``datasets`` (hub id or local folder), and mini-TOFU.

* [`load_tofu`][constrained_unlearn.benchmarks.load_tofu] / [`load_muse`][constrained_unlearn.benchmarks.load_muse]: one split as a ``datasets.Dataset``; the source is a
  hub id or a local folder with the same files (layout in `_source`).
* [`build_minitofu`][constrained_unlearn.benchmarks.build_minitofu]: the synthetic, offline TOFU of this library (data, tokenizer, target
  and retain model), cached on disk; its data loads through [`load_tofu`][constrained_unlearn.benchmarks.load_tofu].
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # names load on first use: `benchmarks.tofu` must not pull in the builders
    from constrained_unlearn.benchmarks.minimuse import MiniMuse, build_minimuse
    from constrained_unlearn.benchmarks.minitofu import (
        PRESETS,
        MiniTofu,
        MiniTofuSize,
        ModelSpec,
        Recipe,
        TrainSettings,
        build_minitofu,
        generate_minitofu,
    )
    from constrained_unlearn.benchmarks.muse import (
        MUSE_BOOKS,
        MUSE_COLUMNS,
        MUSE_NEWS,
        MUSE_SPLITS,
        load_muse,
    )
    from constrained_unlearn.benchmarks.tofu import (
        TOFU_CONFIGS,
        TOFU_HUB_ID,
        forget_retain_pair,
        load_tofu,
        tofu_columns,
        tofu_eval_data,
    )

_SUBMODULE = {
    **dict.fromkeys(("MiniMuse", "build_minimuse"), "minimuse"),
    **dict.fromkeys(
        (
            "PRESETS",
            "MiniTofu",
            "MiniTofuSize",
            "ModelSpec",
            "Recipe",
            "TrainSettings",
            "build_minitofu",
            "generate_minitofu",
        ),
        "minitofu",
    ),
    **dict.fromkeys(
        ("MUSE_BOOKS", "MUSE_COLUMNS", "MUSE_NEWS", "MUSE_SPLITS", "load_muse"), "muse"
    ),
    **dict.fromkeys(
        (
            "TOFU_CONFIGS",
            "TOFU_HUB_ID",
            "forget_retain_pair",
            "load_tofu",
            "tofu_columns",
            "tofu_eval_data",
        ),
        "tofu",
    ),
}


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SUBMODULE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "MUSE_BOOKS",
    "MUSE_COLUMNS",
    "MUSE_NEWS",
    "MUSE_SPLITS",
    "PRESETS",
    "TOFU_CONFIGS",
    "TOFU_HUB_ID",
    "MiniMuse",
    "MiniTofu",
    "MiniTofuSize",
    "ModelSpec",
    "Recipe",
    "TrainSettings",
    "build_minimuse",
    "build_minitofu",
    "forget_retain_pair",
    "generate_minitofu",
    "load_muse",
    "load_tofu",
    "tofu_columns",
    "tofu_eval_data",
]
