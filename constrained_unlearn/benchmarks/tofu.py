"""TOFU (Maini et al. 2024) through ``datasets``: the hub id or a local folder, same code.

TOFU is 200 fictitious authors × 20 QA pairs. Every config has one split, ``train``:

================================  =====================================================
config                            columns
================================  =====================================================
``full``, ``forgetXX``,           ``question``, ``answer``
``retainXX``, ``holdoutXX``
``forgetXX_perturbed``,           ``question``, ``answer``, ``paraphrased_answer``,
``retain_perturbed``              ``perturbed_answer`` (list), ``paraphrased_question``
``real_authors(_perturbed)``,     ``question``, ``answer`` (+ ``perturbed_answer``, a list of
``world_facts(_perturbed)``       wrong options, in the ``_perturbed`` copies)
================================  =====================================================

``XX`` ∈ {01, 05, 10} for forget/holdout and {99, 95, 90} for retain. Local folders hold
``<root>/<config>.{parquet,jsonl,json}`` (TOFU's own repository layout) or
``<root>/<config>/train.<ext>``; see `constrained_unlearn.benchmarks._source`. mini-TOFU
writes the first form, so ``load_tofu(config, minitofu.data_dir)`` reads it with this same code.

Example::

    forget = load_tofu("forget10")                      # hub (needs network)
    forget = load_tofu("forget10", "/data/tofu")        # local copy
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from constrained_unlearn.jsonl import parse_json_lines

if TYPE_CHECKING:  # ``datasets`` takes a second to import: only load_tofu needs it
    import datasets

__all__ = [
    "FORGET_CONFIGS",
    "GENERAL_CONFIGS",
    "HOLDOUT_CONFIGS",
    "RETAIN_CONFIGS",
    "TOFU_CONFIGS",
    "TOFU_HUB_ID",
    "forget_retain_pair",
    "load_tofu",
    "tofu_columns",
    "tofu_eval_data",
]

TOFU_HUB_ID = "locuslab/TOFU"

FORGET_CONFIGS: tuple[str, ...] = ("forget01", "forget05", "forget10")
RETAIN_CONFIGS: tuple[str, ...] = ("retain99", "retain95", "retain90")
HOLDOUT_CONFIGS: tuple[str, ...] = ("holdout01", "holdout05", "holdout10")
GENERAL_CONFIGS: tuple[str, ...] = ("real_authors", "world_facts")

TOFU_CONFIGS: tuple[str, ...] = (
    ("full",)
    + FORGET_CONFIGS
    + RETAIN_CONFIGS
    + tuple(f"{c}_perturbed" for c in FORGET_CONFIGS)
    + ("retain_perturbed",)
    + GENERAL_CONFIGS
    + tuple(f"{c}_perturbed" for c in GENERAL_CONFIGS)
    + HOLDOUT_CONFIGS
)
"""Every TOFU config name."""

_EVAL_COLUMNS = (
    "question",
    "answer",
    "paraphrased_answer",
    "perturbed_answer",
    "paraphrased_question",
)


def tofu_columns(config: str) -> tuple[str, ...]:
    """The columns a TOFU config must have (it may have more)."""
    if config not in TOFU_CONFIGS:
        raise ValueError(f"unknown TOFU config {config!r}; valid configs: {sorted(TOFU_CONFIGS)}")
    if config == "retain_perturbed" or config in {f"{c}_perturbed" for c in FORGET_CONFIGS}:
        return _EVAL_COLUMNS
    if config in {f"{c}_perturbed" for c in GENERAL_CONFIGS}:
        return ("question", "answer", "perturbed_answer")
    return ("question", "answer")


def forget_retain_pair(forget_config: str) -> tuple[str, str]:
    """``"forget10"`` → ``("forget10", "retain90")``: a forget split and its complement."""
    if forget_config not in FORGET_CONFIGS:
        raise ValueError(
            f"forget_config must be one of {list(FORGET_CONFIGS)}, got {forget_config!r}"
        )
    return forget_config, f"retain{100 - int(forget_config[-2:]):02d}"


def load_tofu(
    config: str,
    source: str | os.PathLike = TOFU_HUB_ID,
    *,
    split: str = "train",
    **load_kwargs: Any,
) -> datasets.Dataset:
    """Load one TOFU config as a ``datasets.Dataset``.

    Args:
        config: a name from [`TOFU_CONFIGS`][constrained_unlearn.benchmarks.TOFU_CONFIGS] (``"forget10"``, ``"retain_perturbed"`` …).
        source: the hub id (default ``"locuslab/TOFU"``) or a local folder (module docstring),
            e.g. ``build_minitofu().data_dir``.
        split: TOFU has only ``"train"``.
        **load_kwargs: passed to ``datasets.load_dataset`` (``revision``, ``cache_dir`` …).

    Raises:
        ValueError: unknown config or split (lists the valid ones), empty split, missing
            columns ([`tofu_columns`][constrained_unlearn.benchmarks.tofu_columns]).
        FileNotFoundError: local folder missing, or without this config's file.
    """
    if config not in TOFU_CONFIGS:
        raise ValueError(f"unknown TOFU config {config!r}; valid configs: {sorted(TOFU_CONFIGS)}")
    from constrained_unlearn.benchmarks._source import load_split

    return load_split(
        source,
        config,
        split,
        benchmark="TOFU",
        splits_by_config={c: ("train",) for c in TOFU_CONFIGS},
        required_columns=tofu_columns(config),
        **load_kwargs,
    )


def _parse_json_rows(text: str) -> Any:
    """One JSON array, or JSON Lines; ``ValueError`` when it does not parse."""
    stripped = text.lstrip()
    return json.loads(stripped) if stripped.startswith("[") else parse_json_lines(text)


def _local_json_rows(root: Path, config: str) -> list[dict[str, Any]] | None:
    """Rows of ``<root>/<config>/train.{jsonl,json}`` or ``<root>/<config>.{jsonl,json}`` read
    with `json` (JSON Lines, or one JSON array); ``None`` when no such file exists.

    Raises:
        DataFileError: the file is not valid JSON (e.g. a copy cut short).
    """
    for path in (
        root / config / "train.jsonl",
        root / config / "train.json",
        root / f"{config}.jsonl",
        root / f"{config}.json",
    ):
        if not path.is_file():
            continue
        try:
            rows = _parse_json_rows(path.read_text(encoding="utf-8"))
        except ValueError as err:  # JSON that does not parse, or bytes that are not UTF-8
            from constrained_unlearn.benchmarks._source import unreadable_file

            raise unreadable_file(str(path), "json", err) from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{path} must hold JSON objects, one per row")
        return rows
    return None


def tofu_eval_data(
    source: str | os.PathLike, configs: Sequence[str], **load_kwargs: Any
) -> dict[str, Any]:
    """``{config: rows}`` of just the TOFU ``configs`` an evaluation reads.

    Pass the list from `constrained_unlearn.evaluation.tofu.required_configs`. A local
    folder's JSON / JSON Lines files are read directly with `json` (milliseconds, no
    ``datasets`` import: mini-TOFU and TOFU's own repository layout); anything else (a hub
    id, parquet files) goes through [`load_tofu`][constrained_unlearn.benchmarks.load_tofu]. Rows are checked for the config's
    columns ([`tofu_columns`][constrained_unlearn.benchmarks.tofu_columns]) either way.

    Raises:
        ValueError: an unknown config, an empty config or missing columns.
        FileNotFoundError: a local folder without the config's file.
    """
    out: dict[str, Any] = {}
    local = isinstance(source, os.PathLike) or (
        isinstance(source, str) and (source.startswith(("/", ".", "~")) or Path(source).is_dir())
    )
    for config in dict.fromkeys(configs):
        required = tofu_columns(config)  # also refuses an unknown config
        rows = _local_json_rows(Path(source).expanduser(), config) if local else None
        if rows is None:
            out[config] = load_tofu(config, source, **load_kwargs)
            continue
        if not rows:
            raise ValueError(f"TOFU config {config!r} in {str(source)!r} is empty")
        missing = [c for c in required if c not in rows[0]]
        if missing:
            raise ValueError(
                f"TOFU config {config!r} in {str(source)!r} lacks column(s) {missing}; "
                f"it has {sorted(rows[0])}"
            )
        out[config] = rows
    return out
