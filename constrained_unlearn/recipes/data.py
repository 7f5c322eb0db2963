"""Benchmark data for the recipes: ``{config name: rows}``, loaded lazily.

mini-TOFU is built (or read from its cache) in full; real TOFU configs are loaded on first
access from the hub id or local folder in ``data.path``, so a run only touches the configs it
uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the config pulls in the engine and solvers; evaluation needs neither
    from constrained_unlearn.recipes.config import RunConfig

__all__ = ["LazyTofu", "load_benchmark", "load_splits"]


class LazyTofu(Mapping[str, Any]):
    """TOFU configs loaded on first access, then kept: a local folder's JSON / JSON Lines files
    read directly, a hub id (or parquet files) through ``load_tofu`` (both by
    [`tofu_eval_data`][constrained_unlearn.benchmarks.tofu_eval_data], so a run from local
    files never imports ``datasets``)."""

    def __init__(self, source: str | None = None) -> None:
        from constrained_unlearn.benchmarks.tofu import TOFU_CONFIGS, TOFU_HUB_ID

        self.source = source or TOFU_HUB_ID
        self._names = tuple(TOFU_CONFIGS)
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, config: str) -> Any:
        from constrained_unlearn.benchmarks.tofu import tofu_eval_data

        if config not in self._names:
            raise KeyError(f"unknown TOFU config {config!r}; valid: {sorted(self._names)}")
        if config not in self._loaded:
            self._loaded[config] = tofu_eval_data(self.source, [config])[config]
        return self._loaded[config]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def load_benchmark(
    benchmark: str, path: str | None = None, *, seed: int = 0, size: str = "default"
) -> Mapping[str, Any]:
    """``{config: rows}`` for ``"tofu"`` (hub id or folder in ``path``) or ``"minitofu"``."""
    if benchmark == "minitofu":
        from constrained_unlearn.benchmarks.minitofu import build_minitofu

        return build_minitofu(seed=seed, size=size, progress=True).data
    if benchmark == "tofu":
        return LazyTofu(path)
    raise ValueError(f"unknown benchmark {benchmark!r}; use 'tofu' or 'minitofu'")


def load_splits(cfg: RunConfig) -> Mapping[str, Any]:
    """The benchmark data a run config names."""
    d = cfg.data
    return load_benchmark(d.benchmark, d.path, seed=d.minitofu_seed, size=d.minitofu_size)
