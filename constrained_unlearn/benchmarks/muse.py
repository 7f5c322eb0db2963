"""MUSE (Shi et al. 2024) through ``datasets``: the hub id or a local folder, same code.

Two corpora, ``muse-bench/MUSE-News`` (BBC news) and ``muse-bench/MUSE-Books`` (Harry Potter):

============  ===============================================  =====================
config        splits                                           columns
============  ===============================================  =====================
``raw``       ``forget``, ``retain1``, ``retain2``, ``holdout``  ``text``
``train``     ``forget``, ``retain1``, ``retain2``               ``text``
``verbmem``   ``forget``                                       ``prompt``, ``gt``
``knowmem``   ``forget_qa``, ``forget_qa_icl``,                 ``question``, ``answer``
              ``retain_qa``, ``retain_qa_icl``
``privleak``  ``forget``, ``retain``, ``holdout``                ``text``
``scal``      ``forget_1`` … ``forget_4`` (nested)             ``text``
``sust``      ``forget_1`` … ``forget_4`` (disjoint)           ``text``
============  ===============================================  =====================

``scal`` and ``sust`` exist for News only. A local folder holds
``<root>/<config>/<split>.{parquet,jsonl,json}`` or sharded ``<root>/<config>/<split>-*.<ext>``
(see `constrained_unlearn.benchmarks._source`).

Example::

    forget = load_muse("raw", "forget")                          # MUSE-News from the hub
    qa = load_muse("knowmem", "retain_qa", MUSE_BOOKS)           # MUSE-Books from the hub
    qa = load_muse("knowmem", "retain_qa", "/data/muse-news")    # local copy
"""

from __future__ import annotations

import os
from typing import Any

import datasets

from constrained_unlearn.benchmarks._source import load_split

__all__ = [
    "MUSE_BOOKS",
    "MUSE_COLUMNS",
    "MUSE_NEWS",
    "MUSE_SPLITS",
    "NEWS_ONLY_CONFIGS",
    "load_muse",
]

MUSE_NEWS = "muse-bench/MUSE-News"
MUSE_BOOKS = "muse-bench/MUSE-Books"

_FORGET_N = ("forget_1", "forget_2", "forget_3", "forget_4")

MUSE_SPLITS: dict[str, tuple[str, ...]] = {
    "raw": ("forget", "retain1", "retain2", "holdout"),
    "train": ("forget", "retain1", "retain2"),
    "verbmem": ("forget",),
    "knowmem": ("forget_qa", "forget_qa_icl", "retain_qa", "retain_qa_icl"),
    "privleak": ("forget", "retain", "holdout"),
    "scal": _FORGET_N,
    "sust": _FORGET_N,
}
"""Every MUSE config and its splits."""

NEWS_ONLY_CONFIGS: tuple[str, ...] = ("scal", "sust")

MUSE_COLUMNS: dict[str, tuple[str, ...]] = {
    "raw": ("text",),
    "train": ("text",),
    "verbmem": ("prompt", "gt"),
    "knowmem": ("question", "answer"),
    "privleak": ("text",),
    "scal": ("text",),
    "sust": ("text",),
}
"""The columns each MUSE config must have (it may have more)."""


def load_muse(
    config: str,
    split: str,
    source: str | os.PathLike = MUSE_NEWS,
    **load_kwargs: Any,
) -> datasets.Dataset:
    """Load one MUSE split as a ``datasets.Dataset``.

    Args:
        config: a key of [`MUSE_SPLITS`][constrained_unlearn.benchmarks.MUSE_SPLITS] (``"raw"``, ``"knowmem"`` …).
        split: one of ``MUSE_SPLITS[config]``.
        source: `MUSE_NEWS` (default), `MUSE_BOOKS`, another hub id or a local
            folder (module docstring).
        **load_kwargs: passed to ``datasets.load_dataset``.

    Raises:
        ValueError: unknown config or split (lists the valid ones), ``scal``/``sust`` asked of
            MUSE-Books, empty split, missing columns.
        FileNotFoundError: local folder missing, or without this split's file.
    """
    if config in NEWS_ONLY_CONFIGS and isinstance(source, str) and source == MUSE_BOOKS:
        raise ValueError(
            f"MUSE-Books has no {config!r} config ({list(NEWS_ONLY_CONFIGS)} exist for "
            f"MUSE-News only); use source={MUSE_NEWS!r}"
        )
    return load_split(
        source,
        config,
        split,
        benchmark="MUSE",
        splits_by_config=MUSE_SPLITS,
        required_columns=MUSE_COLUMNS.get(config, ()),
        **load_kwargs,
    )
