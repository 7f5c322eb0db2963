"""Evaluation reports in open-unlearning's shape, with provenance and bootstrap intervals.

Per run folder and evaluator ``NAME`` (``TOFU``, ``MUSE``) two files are (re)written during the
run (at most every ``CHECKPOINT_SECONDS``) and at its end, so an interrupted run resumes:

``<NAME>_EVAL.json``
    every metric, pre-computes included, keys sorted, each shaped
    ``{"agg_value": float, "value_by_index": {"0": {...}, ...}}`` (aggregate-only metrics:
    ``{"agg_value": float}``), plus the key ``"provenance"``.

``<NAME>_SUMMARY.json``
    ``{top-level metric: agg_value}`` as open-unlearning writes it, plus two keys that are not
    metrics: ``"bootstrap_ci"`` (``{metric: [low, high]}``, 95 % percentile bootstrap of the
    mean for every top-level metric that is a mean over examples) and ``"provenance"``.

Metrics whose aggregate is a mean over examples also carry ``"bootstrap_ci": {"low", "high",
"confidence", "n_resamples", "seed"}`` in the EVAL file (the interval of the mean of the per-
example values, NaN rows dropped; see ``metrics.bootstrap_ci``).

Open-unlearning's own ``TOFU_EVAL.json`` / ``MUSE_EVAL.json`` read with the same code
(`load_reference_log`): forget quality needs ``forget_truth_ratio.value_by_index[*].score``
(raw truth ratios), privacy leak needs ``mia_min_k.agg_value`` (Min-K% AUC, → 1 when memorised).
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from constrained_unlearn.evaluation import provenance as prov
from constrained_unlearn.evaluation.metrics import bootstrap_ci

NON_METRIC_KEYS = ("provenance", "bootstrap_ci")
CI_CONFIDENCE = 0.95
CI_RESAMPLES = 1000
CHECKPOINT_SECONDS = 5.0
"""Minimum time between two report writes during a run (the last write is at the end)."""


def to_jsonable(value: Any) -> Any:
    """Numpy scalars/arrays and tuples → plain JSON types (NaN stays a float NaN)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def with_bootstrap(
    metric: dict[str, Any], values: Sequence[float] | np.ndarray, *, seed: int
) -> dict[str, Any]:
    """Attach the bootstrap interval of the mean of ``values`` (non-finite values dropped;
    nothing attached when none is left)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return metric
    low, high = bootstrap_ci(x, confidence=CI_CONFIDENCE, n_resamples=CI_RESAMPLES, seed=seed)
    metric["bootstrap_ci"] = {
        "low": low,
        "high": high,
        "confidence": CI_CONFIDENCE,
        "n_resamples": CI_RESAMPLES,
        "seed": seed,
    }
    return metric


def by_index(items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``[{...}, ...]`` → ``{"0": {...}, ...}`` (open-unlearning's ``value_by_index``)."""
    return {str(i): dict(item) for i, item in enumerate(items)}


def nanmean(values: Sequence[float] | np.ndarray) -> float:
    """Mean that is NaN when any value is NaN (a NaN per-example score must stay visible)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan
    return float(x.mean())


def summary_of(
    results: Mapping[str, Any], top_level: Sequence[str], provenance: Mapping[str, Any]
) -> dict[str, Any]:
    """The SUMMARY dict: ``{metric: agg_value}`` for the top-level metrics present, then
    ``bootstrap_ci`` and ``provenance``."""
    summary: dict[str, Any] = {}
    cis: dict[str, list[float]] = {}
    for key in top_level:
        if key in results and isinstance(results[key], Mapping):
            summary[key] = results[key].get("agg_value")
            ci = results[key].get("bootstrap_ci")
            if ci is not None:
                cis[key] = [ci["low"], ci["high"]]
    summary["bootstrap_ci"] = cis
    summary["provenance"] = dict(provenance)
    return summary


def report_paths(output_dir: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """``(<dir>/<NAME>_EVAL.json, <dir>/<NAME>_SUMMARY.json)``."""
    folder = Path(output_dir)
    return folder / f"{name}_EVAL.json", folder / f"{name}_SUMMARY.json"


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    # a name of this process's own: two processes writing the same report never share it
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(to_jsonable(payload), fh, indent=2, sort_keys=True, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)


def write_report(
    output_dir: str | os.PathLike[str],
    name: str,
    results: Mapping[str, Any],
    provenance: Mapping[str, Any],
    top_level: Sequence[str],
) -> tuple[Path, Path]:
    """Write ``<NAME>_EVAL.json`` and ``<NAME>_SUMMARY.json`` atomically; return both paths."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    eval_path, summary_path = report_paths(folder, name)
    full = {k: v for k, v in results.items() if k not in NON_METRIC_KEYS}
    full["provenance"] = dict(provenance)
    _write_json(eval_path, full)
    _write_json(summary_path, summary_of(results, top_level, provenance))
    return eval_path, summary_path


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load an EVAL/SUMMARY JSON file (ours or open-unlearning's)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"report {str(path)!r} does not exist")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} does not hold a JSON object of metrics")
    return data


def run_metrics(
    plan: Sequence[str],
    compute: Callable[[str, dict[str, Any]], Mapping[str, Any]],
    *,
    name: str,
    provenance: Mapping[str, Any],
    top_level: Sequence[str],
    output_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Compute ``plan`` in order, reusing and (re)writing the run folder's reports.

    ``compute(metric, results)`` returns one metric's dict; ``results`` holds every metric
    computed (or reused) before it, so a metric can read its pre-computes. With an
    ``output_dir`` both reports are rewritten after a metric when `CHECKPOINT_SECONDS`
    have passed since the last write, and at the end (an interrupted run resumes from the
    last write).

    Reuse rule: metrics stored in ``<NAME>_EVAL.json`` are reused only when the file's
    ``provenance.cache_key`` equals this run's (same weights hash and settings) and
    ``overwrite`` is false. A file made for other weights or settings is never reused: a
    warning names what differs and the file is rewritten.

    Returns:
        ``{metric: dict}`` for every metric of ``plan``, then ``"provenance"``.
    """
    results: dict[str, Any] = {}
    if output_dir is not None:
        eval_path, _ = report_paths(output_dir, name)
        if eval_path.is_file() and not overwrite:
            stored = read_report(eval_path)
            stored_prov = stored.get("provenance")
            if prov.cache_matches(stored_prov, provenance):
                results = {k: v for k, v in stored.items() if k in plan}
            else:
                if isinstance(stored_prov, Mapping):
                    what = prov.describe_differences(stored_prov, provenance)
                    old_w = stored_prov.get("model", {}).get("weights_sha256")
                    if old_w != provenance.get("model", {}).get("weights_sha256"):
                        what = ["model weights", *what]
                else:
                    what = ["no provenance in the stored file"]
                warnings.warn(
                    f"{eval_path} holds results for other weights or settings "
                    f"({', '.join(what[:8]) or 'cache key'}); they are not reused and the file "
                    "is rewritten",
                    UserWarning,
                    stacklevel=3,
                )
    last_write = time.monotonic()
    for metric in plan:
        if metric in results:
            continue
        results[metric] = to_jsonable(compute(metric, results))
        # checkpoint the reports when the work since the last write is worth keeping (the
        # files grow with every metric: rewriting them after each cheap one costs more than
        # the metric itself)
        if output_dir is not None and time.monotonic() - last_write >= CHECKPOINT_SECONDS:
            write_report(output_dir, name, results, provenance, top_level)
            last_write = time.monotonic()
    if output_dir is not None:
        write_report(output_dir, name, results, provenance, top_level)
    out = {k: results[k] for k in plan}
    out["provenance"] = dict(provenance)
    return out


def format_number(value: Any, digits: int = 4) -> str:
    """A metric value for people: ``digits`` decimals, or scientific notation with
    ``digits − 1`` significant digits when it is non-zero and below ``10^-(digits-1)`` in
    magnitude (forget quality p-values such as ``8.45e-11``); ``nan`` / ``inf`` as such,
    non-numbers as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return str(value)
    x = float(value)
    if not math.isfinite(x):
        return str(x)
    if x != 0.0 and abs(x) < 10.0 ** -(digits - 1):
        return f"{x:.{max(0, digits - 2)}e}"
    return f"{x:.{digits}f}"


def format_summary(results: Mapping[str, Any], *, digits: int = 4, width: int = 32) -> str:
    """One line per metric of ``results`` that has an ``agg_value``: its name padded to
    ``width`` and the value rounded by `format_number` (what ``eval`` prints)."""
    lines = []
    for key, value in results.items():
        if isinstance(value, Mapping) and "agg_value" in value:
            lines.append(f"{key:{width}s} {format_number(value['agg_value'], digits)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ReferenceLog:
    """What forget quality and privacy leak need from a retain (or retrain) model's log.

    Attributes:
        truth_ratios: raw per-question truth ratios on the forget split
            (``forget_truth_ratio.value_by_index[*].score`` in index order), or ``None``.
        mia_min_k_auc: Min-K% (k = 0.4) forget-vs-holdout AUC, open-unlearning orientation
            (→ 1 when memorised), or ``None``.
        provenance: the log's provenance block; ``None`` for an open-unlearning log.
        source: where it came from (a path or ``"<dict>"``), for messages.
    """

    truth_ratios: np.ndarray | None
    mia_min_k_auc: float | None
    provenance: dict[str, Any] | None
    source: str


def _truth_ratios_of(log: Mapping[str, Any], source: str) -> np.ndarray | None:
    entry = log.get("forget_truth_ratio")
    if entry is None:
        return None
    values = entry.get("value_by_index") if isinstance(entry, Mapping) else None
    if not isinstance(values, Mapping) or not values:
        raise ValueError(
            f"{source}: forget_truth_ratio has no value_by_index; forget quality needs the "
            "per-question raw truth ratios (open-unlearning key forget_truth_ratio."
            "value_by_index[*].score)"
        )
    try:
        keys = sorted(values, key=int)
    except ValueError as exc:
        raise ValueError(f"{source}: value_by_index keys must be integer strings") from exc
    ratios = []
    for key in keys:
        item = values[key]
        score = item.get("score") if isinstance(item, Mapping) else None
        if score is None:
            raise ValueError(f"{source}: forget_truth_ratio.value_by_index[{key!r}] has no 'score'")
        ratios.append(float(score))
    return np.asarray(ratios, dtype=np.float64)


def load_reference_log(
    source: str | os.PathLike[str] | Mapping[str, Any], *, name: str = "TOFU"
) -> ReferenceLog:
    """Read a retain/retrain model's evaluation log.

    Args:
        source: a ``<NAME>_EVAL.json`` file, a folder holding one, or the already loaded dict.
        name: the evaluator name that prefixes the file in a folder (``TOFU`` / ``MUSE``).

    Raises:
        FileNotFoundError: when the file or folder does not exist or holds no such file.
        ValueError: when the log is malformed.
    """
    if isinstance(source, Mapping):
        log, label = dict(source), "<retain log dict>"
    else:
        path = Path(source)
        if path.is_dir():
            path = path / f"{name}_EVAL.json"
            if not path.is_file():
                raise FileNotFoundError(
                    f"folder {str(Path(source))!r} has no {name}_EVAL.json; pass the log file "
                    "itself or the folder an evaluation of the retain model wrote"
                )
        log, label = read_report(path), str(path)
    ratios = _truth_ratios_of(log, label)
    auc = None
    mia = log.get("mia_min_k")
    if isinstance(mia, Mapping) and mia.get("agg_value") is not None:
        auc = float(mia["agg_value"])
    provenance = log.get("provenance")
    if provenance is not None and not isinstance(provenance, Mapping):
        raise ValueError(f"{label}: 'provenance' must be an object")
    return ReferenceLog(
        truth_ratios=ratios,
        mia_min_k_auc=auc,
        provenance=dict(provenance) if provenance is not None else None,
        source=label,
    )


__all__ = [
    "NON_METRIC_KEYS",
    "ReferenceLog",
    "by_index",
    "format_number",
    "format_summary",
    "load_reference_log",
    "nanmean",
    "read_report",
    "report_paths",
    "run_metrics",
    "summary_of",
    "to_jsonable",
    "with_bootstrap",
    "write_report",
]
