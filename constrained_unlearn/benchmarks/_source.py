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
``datasets.Dataset`` exactly like a hub split; a file that cannot be parsed (a truncated last
line …) raises `DataFileError` naming the file and the parser's reason.

A hub id fails fast when it cannot be fetched: with ``HF_HUB_OFFLINE`` set, or when a short
connect probe finds the hub unreachable
(`hub_unreachable`), ``load_dataset`` runs in offline mode
(the cache only) and a dataset that is not cached raises `DatasetUnavailableError` at once
with one line naming the id, the local-folder alternative and ``HF_HUB_OFFLINE``.

``datasets`` is imported when a split is loaded, not with this module.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

__all__ = [
    "EXTENSIONS",
    "DataFileError",
    "DatasetUnavailableError",
    "find_local_files",
    "is_local",
    "load_split",
    "unreadable_file",
]


class DatasetUnavailableError(FileNotFoundError):
    """A hub dataset that cannot be fetched (offline or the hub unreachable) and is not cached."""


class DataFileError(ValueError):
    """A local data file that cannot be parsed; the message names the file and the reason."""


def unreadable_file(shown: str, builder: str, cause: BaseException) -> DataFileError:
    """The `DataFileError` for a local file (or files, ``shown``) that ``builder`` cannot parse."""
    first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return DataFileError(
        f"{shown} cannot be read as {builder} ({first}); check the file is complete and valid "
        "(a download or copy cut short leaves a truncated last line) and fetch it again"
    )


EXTENSIONS: tuple[tuple[str, str], ...] = (
    ("parquet", "parquet"),
    ("jsonl", "json"),
    ("json", "json"),
)
"""``(file extension, datasets builder)`` in order of preference."""


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Silence ``datasets``' per-load progress bars (reading a local file takes milliseconds)."""
    import datasets

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


def _load_local(builder: str, files: list[str], load_kwargs: Mapping[str, Any]) -> Any:
    import datasets
    from datasets.exceptions import DatasetGenerationError

    try:
        with _quiet_progress():
            return datasets.load_dataset(builder, data_files=files, split="train", **load_kwargs)
    except DatasetGenerationError as err:
        cause = err.__cause__ or err.__context__ or err
        shown = files[0] if len(files) == 1 else f"{len(files)} files ({files[0]} …)"
        raise unreadable_file(shown, builder, cause) from None


@contextlib.contextmanager
def _cache_only() -> Iterator[None]:
    """``datasets`` and ``huggingface_hub`` in offline mode for one call (the cache only)."""
    import datasets.config
    import huggingface_hub.constants

    saved = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _offline_flag() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("HF_DATASETS_OFFLINE"))
    return any(f is not None and f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _load_hub(
    source: str, config: str, split: str, benchmark: str, load_kwargs: Mapping[str, Any]
) -> Any:
    from constrained_unlearn.llm.loading import hub_unreachable

    reason = "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set" if _offline_flag() else hub_unreachable()
    if reason is not None and not _maybe_cached(source):
        # nothing of this id on disk: say so now, without importing `datasets` (seconds)
        raise _unavailable(benchmark, config, split, source, reason)
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    context = _cache_only() if reason is not None else contextlib.nullcontext()
    try:
        with context:
            return datasets.load_dataset(source, config, split=split, **load_kwargs)
    except (ConnectionError, DatasetNotFoundError, FileNotFoundError) as err:
        if reason is None:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DatasetUnavailableError(
                f"{benchmark} {config}/{split} could not be loaded from the hub id {source!r} "
                f"({first}); check the id, or pass a local folder with the same files "
                "(data.path=/path/to/folder); HF_HUB_OFFLINE=1 uses only the cache"
            ) from None
        raise _unavailable(benchmark, config, split, source, reason) from None


def _unavailable(
    benchmark: str, config: str, split: str, source: str, reason: str
) -> DatasetUnavailableError:
    flag = "unset HF_HUB_OFFLINE" if _offline_flag() else "set HF_HUB_OFFLINE=1 to skip the hub"
    return DatasetUnavailableError(
        f"{benchmark} {config}/{split} of {source!r} is not in the local cache, and {reason}; "
        "pass a local folder with the same files (data.path=/path/to/folder), download it "
        f"once where the hub can be reached, or {flag}"
    )


def _maybe_cached(source: str) -> bool:
    """Whether ``datasets`` or the hub cache may hold ``source`` (a conservative look on disk:
    ``True`` whenever a cache folder naming the id exists, or the cache location is unusual)."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets")).expanduser()
    hub_cache = Path(os.environ.get("HF_HUB_CACHE", home / "hub")).expanduser()
    owner, _, name = source.partition("/")
    candidates = [
        datasets_cache / f"{owner}___{name}" if name else datasets_cache / owner,
        hub_cache / f"datasets--{source.replace('/', '--')}",
    ]
    return any(path.exists() for path in candidates)


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
        dataset = _load_local(builder, files, load_kwargs)
        where = f"{files[0]}" if len(files) == 1 else f"{len(files)} files in {root / config}"
    else:
        dataset = _load_hub(str(source), config, split, benchmark, load_kwargs)
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
