"""One loader for benchmark splits, from a hub id or a local folder.

A *source* is either a Hugging Face hub id (``"locuslab/TOFU"``), handed unchanged to
``datasets.load_dataset(source, config, split=split)``, or a local folder with the same data.
A source is taken as a local folder when it is a ``os.PathLike``, when it names an existing
directory, or when it starts with ``/``, ``.`` or ``~``; anything else is a hub id.

Local layout (first match wins, formats in the order parquet, jsonl, json)::

    <root>/<config>/<split>.<ext>          one file per split (any benchmark)
    <root>/<config>/<split>-*.<ext>        sharded split, e.g. the hub's parquet export
                                           ``raw/forget-00000-of-00001.parquet``
    <root>/<config>.<ext>                  single-split benchmarks only (TOFU, whose only split is
                                           ``train``): the layout of TOFU's own hub repository,
                                           ``forget10.json``, ``full.json`` …

``.json`` may hold JSON Lines or one JSON array; ``.jsonl`` holds JSON Lines. Local files are read
with the ``json`` / ``parquet`` builders of ``datasets``, so a local split is a
``datasets.Dataset`` exactly like a hub split.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

EXTENSIONS: tuple[tuple[str, str], ...] = (
    ("parquet", "parquet"),
    ("jsonl", "json"),
    ("json", "json"),
)
"""``(file extension, datasets builder)`` in order of preference."""


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Silence ``datasets``' per-load progress bars (reading a local file takes milliseconds)."""
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def is_local(source: str | os.PathLike) -> bool:
    """Whether ``source`` names a local folder rather than a hub id (see the module docstring)."""
    if isinstance(source, os.PathLike):
        return True
    if not isinstance(source, str) or not source:
        raise TypeError(f"source must be a hub id string or a local folder path, got {source!r}")
    return source.startswith(("/", ".", "~")) or Path(source).is_dir()


def find_local_files(
    root: Path, config: str, split: str, *, single_split: bool
) -> tuple[str, list[str]] | None:
    """``(builder, files)`` of one split under ``root``, or ``None`` when nothing matches."""
    folder = root / config
    for ext, builder in EXTENSIONS:
        exact = folder / f"{split}.{ext}"
        if exact.is_file():
            return builder, [str(exact)]
        shards = sorted(folder.glob(f"{split}-*.{ext}"))
        if shards:
            return builder, [str(p) for p in shards]
    if single_split:
        for ext, builder in EXTENSIONS:
            flat = root / f"{config}.{ext}"
            if flat.is_file():
                return builder, [str(flat)]
    return None


def _is_empty_file(builder: str, path: str) -> bool:
    """Whether a local data file holds no row (``datasets`` fails obscurely on those)."""
    if builder == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows == 0
    with open(path, encoding="utf-8") as f:
        head = f.read(64).strip()
    return head in ("", "[]")


def _expected_paths(root: Path, config: str, split: str, single_split: bool) -> list[str]:
    paths = [str(root / config / f"{split}.{{parquet,jsonl,json}}")]
    paths.append(str(root / config / f"{split}-*.{{parquet,jsonl,json}}"))
    if single_split:
        paths.append(str(root / f"{config}.{{parquet,jsonl,json}}"))
    return paths


def load_split(
    source: str | os.PathLike,
    config: str,
    split: str,
    *,
    benchmark: str,
    splits_by_config: Mapping[str, Sequence[str]],
    required_columns: Sequence[str],
    **load_kwargs: Any,
) -> datasets.Dataset:
    """Load ``config`` / ``split`` of a benchmark from a hub id or a local folder.

    Args:
        source: hub id or local folder (module docstring).
        config: config name; must be a key of ``splits_by_config``.
        split: split name; must be in ``splits_by_config[config]``.
        benchmark: name used in error messages ("TOFU", "MUSE").
        splits_by_config: the valid configs and their splits.
        required_columns: columns the loaded split must have.
        **load_kwargs: passed to ``datasets.load_dataset`` (``revision``, ``token``,
            ``cache_dir`` …).

    Raises:
        ValueError: unknown config or split (the message lists the valid ones), an empty
            split, or missing columns.
        FileNotFoundError: a local folder that does not exist or lacks the split's file.
    """
    if config not in splits_by_config:
        raise ValueError(
            f"unknown {benchmark} config {config!r}; valid configs: {sorted(splits_by_config)}"
        )
    valid_splits = list(splits_by_config[config])
    if split not in valid_splits:
        raise ValueError(
            f"unknown split {split!r} for {benchmark} config {config!r}; "
            f"valid splits: {valid_splits}"
        )
    single_split = all(list(s) == ["train"] for s in splits_by_config.values())
    if is_local(source):
        root = Path(source).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(
                f"{benchmark} source {str(source)!r} is not an existing folder; pass a hub id "
                "or a folder laid out as in constrained_unlearn.benchmarks._source"
            )
        found = find_local_files(root, config, split, single_split=single_split)
        if found is None:
            raise FileNotFoundError(
                f"no file for {benchmark} {config}/{split} in {str(root)!r}; expected one of "
                f"{_expected_paths(root, config, split, single_split)}"
            )
        builder, files = found
        if all(_is_empty_file(builder, f) for f in files):
            raise ValueError(f"{benchmark} {config}/{split} in {files} is empty (0 rows)")
        with _quiet_progress():
            dataset = datasets.load_dataset(builder, data_files=files, split="train", **load_kwargs)
        where = f"{files[0]}" if len(files) == 1 else f"{len(files)} files in {root / config}"
    else:
        dataset = datasets.load_dataset(source, config, split=split, **load_kwargs)
        where = f"{source} ({config}/{split})"
    if len(dataset) == 0:
        raise ValueError(f"{benchmark} {config}/{split} from {where} is empty (0 rows)")
    missing = [c for c in required_columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{benchmark} {config}/{split} from {where} lacks column(s) {missing}; it has "
            f"{dataset.column_names}"
        )
    return dataset
