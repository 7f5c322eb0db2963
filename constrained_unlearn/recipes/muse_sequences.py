"""Recipe: MUSE corpus unlearning — one request, and MUSE's scalability and sustainability runs.

    config → forget / retain corpora (load_muse: hub id or local folder)
           → CorpusDataset chunks → PairedData → terms → UnlearningEngine.fit()
           → saved model → MUSE evaluation (VerbMem, KnowMem, PrivLeak)

A *request* unlearns one forget corpus from a starting model. MUSE's two sequences of requests
(metrics.md §4.6):

* **scalability** — request ``k = 1..4`` unlearns ``scal/forget_k`` (nested folds, ``k``
  times the data) and starts from the **target** model every time;
* **sustainability** — request ``k`` unlearns ``sust/forget_k`` (disjoint folds) and starts
  from the model that request ``k − 1`` produced (request 1 from the target).

Every request trains on its own fold and writes to its own folder, ``<out>/scal/forget_k/`` or
``<out>/sust/forget_k/``; an existing folder is an error (``overwrite=True`` deletes it
first), so a request never reuses or overwrites another's model or metrics. Each folder holds
``model/``, ``history.json``, ``train_summary.json``, ``eval/MUSE_{EVAL,SUMMARY}.json`` and
``request.json``: the fold, a fingerprint of its documents, and the SHA-256 of the starting and
final weights. In a sustainability run the starting hash of request ``k`` equals the final
hash of request ``k − 1``; `run_sequence` checks it (open-unlearning's script never passed
the fold, so every "request" unlearned ``forget_4``: metrics.md §8).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from constrained_unlearn.engine import Callback
from constrained_unlearn.llm import load_model_and_tokenizer
from constrained_unlearn.llm.corpus import CorpusDataset
from constrained_unlearn.recipes.config import MUSE_BENCHMARKS, RunConfig, parse_muse_split
from constrained_unlearn.recipes.llm_unlearn import UnlearnResult, train_and_record
from constrained_unlearn.tracking import MlflowRun

__all__ = [
    "HEADLINE_METRICS",
    "SEQUENCE_KINDS",
    "RequestRecord",
    "SequenceKind",
    "SequenceResult",
    "agg",
    "corpus_dataset",
    "evaluate_muse",
    "format_sequence_table",
    "load_corpus",
    "metric_cell",
    "muse_source",
    "run_scalability",
    "run_sequence",
    "run_sustainability",
    "unlearn_corpus",
]

SequenceKind = Literal["scal", "sust"]
SEQUENCE_KINDS: tuple[str, ...] = ("scal", "sust")
HEADLINE_METRICS: tuple[tuple[str, str], ...] = (
    ("forget_verbmem_ROUGE", "VerbMem forget"),
    ("forget_knowmem_ROUGE", "KnowMem forget"),
    ("retain_knowmem_ROUGE", "KnowMem retain"),
    ("privleak", "PrivLeak"),
)
"""MUSE's four headline metrics: ``(key, column title)``."""


# ---------------------------------------------------------------------------------- data
def muse_source(cfg: RunConfig) -> str:
    """Where a run's MUSE data lives: ``data.path`` (hub id or folder), the hub's MUSE-News
    for ``muse``, or the cached mini-MUSE build's data folder for ``minimuse``."""
    d = cfg.data
    if d.benchmark not in MUSE_BENCHMARKS:
        raise ValueError(
            f"data.benchmark={d.benchmark!r} is not a MUSE benchmark; use one of "
            f"{list(MUSE_BENCHMARKS)}"
        )
    if d.path:
        return d.path
    if d.benchmark == "muse":
        from constrained_unlearn.benchmarks.muse import MUSE_NEWS

        return MUSE_NEWS
    from constrained_unlearn.benchmarks.minimuse import build_minimuse

    return str(build_minimuse(seed=d.minimuse_seed, size=d.minimuse_size).data_dir)


def load_corpus(source: str, name: str, key: str = "data.forget_split") -> Any:
    """A MUSE corpus split (``"forget"``, ``"sust/forget_2"`` …) from ``source``."""
    from constrained_unlearn.benchmarks.muse import load_muse

    config, split = parse_muse_split(name, key)
    return load_muse(config, split, source)


def corpus_dataset(cfg: RunConfig, rows: Any, tokenizer: Any) -> CorpusDataset:
    """``rows`` chunked as the run config says (``data.chunk_length``, ``data.pack``)."""
    return CorpusDataset(rows, tokenizer, chunk_length=cfg.data.chunk_length, pack=cfg.data.pack)


# ---------------------------------------------------------------------------------- one request
def unlearn_corpus(
    cfg: RunConfig,
    forget_rows: Any,
    retain_rows: Any,
    *,
    model: Any,
    tokenizer: Any,
    callbacks: Sequence[Callback] = (),
    tags: Mapping[str, str] | None = None,
    after_training: Callable[[UnlearnResult, MlflowRun | None], None] | None = None,
) -> UnlearnResult:
    """Unlearn a text corpus from ``model`` (trained in place) with the method of ``cfg``.

    The corpus counterpart of `run_unlearning`:
    the forget and retain documents become [`CorpusDataset`][constrained_unlearn.llm.CorpusDataset]
    chunks (every supervised token of a forget chunk enters the forget loss), the rest is the
    same engine, terms, solver and MLflow logging.

    Args:
        cfg: the validated run config (``data.chunk_length``, ``data.pack``, ``method``,
            ``training``, ``output.dir`` …).
        forget_rows: the forget documents (strings, ``{"text": …}`` rows or a dataset).
        retain_rows: the retain documents.
        model: the starting model.
        tokenizer: its tokenizer (with a pad token).
        callbacks: extra engine callbacks.
        tags: extra MLflow tags.
        after_training: called with the result (and the MLflow run) before the run is closed.

    Returns:
        An `UnlearnResult`;
        ``final_retain_loss`` is the token NLL over every retain chunk target.
    """
    cfg.validate()
    forget = corpus_dataset(cfg, forget_rows, tokenizer)
    retain = corpus_dataset(cfg, retain_rows, tokenizer)
    corpus = {
        name: {
            "documents": ds.num_documents,
            "chunks": len(ds),
            "tokens": ds.num_tokens,
            "targets": ds.num_targets,
            "dropped_chunks": ds.num_dropped_chunks,
        }
        for name, ds in (("forget", forget), ("retain", retain))
    }
    return train_and_record(
        cfg,
        forget,
        retain,
        model=model,
        tokenizer=tokenizer,
        summary={"corpus": corpus},
        callbacks=callbacks,
        tags=tags,
        after_training=after_training,
        progress=False,
        signature={"data.chunk_length": cfg.data.chunk_length, "data.pack": cfg.data.pack},
    )


# ---------------------------------------------------------------------------------- evaluation
def evaluate_muse(
    model: Any,
    tokenizer: Any,
    eval_data: Mapping[str, Any],
    output_dir: str | Path | None,
    *,
    retrain_logs: str | Path | None = None,
    retrain_auc: float | str | None = None,
    batch_size: int = 32,
    overwrite: bool = False,
) -> dict[str, Any]:
    """MUSE's metrics of one model ([`MuseEvaluator`][constrained_unlearn.evaluation.MuseEvaluator],
    open-unlearning convention). PrivLeak needs ``retrain_logs`` (the retrained model's
    ``MUSE_EVAL.json``) or ``retrain_auc``; with neither it is skipped. A report in
    ``output_dir`` made for the same weights and settings is reused."""
    from constrained_unlearn.evaluation.muse import MuseEvaluator

    evaluator = MuseEvaluator(
        model,
        tokenizer,
        eval_data,
        batch_size=batch_size,
        retrain_logs=retrain_logs,
        retrain_auc=retrain_auc,
    )
    skip = retrain_logs is None and retrain_auc is None
    return evaluator.evaluate(output_dir, skip_privleak=skip, overwrite=overwrite)


def agg(results: Mapping[str, Any] | None, key: str) -> float:
    """``results[key]["agg_value"]`` or NaN."""
    value = (results or {}).get(key)
    return float(value.get("agg_value", math.nan)) if isinstance(value, Mapping) else math.nan


def metric_cell(results: Mapping[str, Any] | None, key: str) -> str:
    """A table cell: the value to 3 decimals; ``"0 (reference)"`` for the PrivLeak of the
    retrained model (its own log has the Min-K% AUC but no PrivLeak: it is the reference)."""
    results = results or {}
    if key == "privleak" and "privleak" not in results and "mia_min_k" in results:
        return "0 (reference)"
    return f"{agg(results, key):.3f}"


# ---------------------------------------------------------------------------------- sequences
@dataclass
class RequestRecord:
    """One request of a sequence (also written to ``<folder>/request.json``).

    Attributes:
        kind: ``"scal"`` or ``"sust"``.
        k: the request number, 1-based.
        forget_split: ``"scal/forget_k"`` or ``"sust/forget_k"``.
        folder: the request's own output folder.
        forget_documents: documents in the fold.
        forget_fingerprint: SHA-256 of the fold's rows.
        start_from: ``"target"`` or the folder of the previous request.
        start_weights: SHA-256 of the starting weights.
        final_weights: SHA-256 of the unlearned weights.
        retain_loss: ``(start, bound, final)`` of the retain constraint.
        results: the MUSE metrics (``None`` when not evaluated).
    """

    kind: str
    k: int
    forget_split: str
    folder: Path
    forget_documents: int
    forget_fingerprint: str
    start_from: str
    start_weights: str
    final_weights: str
    retain_loss: tuple[float, float, float]
    results: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "results"}
        out["folder"] = str(self.folder)
        out["summary"] = {key: agg(self.results, key) for key, _ in HEADLINE_METRICS}
        return out


@dataclass
class SequenceResult:
    """A whole scalability or sustainability run."""

    kind: str
    requests: list[RequestRecord] = field(default_factory=list)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    table: str = ""


def _claim_folder(folder: Path, overwrite: bool) -> None:
    if folder.exists():
        if not overwrite:
            raise FileExistsError(
                f"{folder} already exists: a request writes only to a folder of its own. "
                "Choose another output folder or pass overwrite=True (--overwrite) to delete it"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _request_config(cfg: RunConfig, kind: str, k: int, folder: Path) -> RunConfig:
    c = copy.deepcopy(cfg)
    c.data.forget_split = f"{kind}/forget_{k}"
    c.output.dir = str(folder)
    c.output.save_model = True
    c.tracking.run_name = f"{cfg.tracking.run_name or cfg.method.name}-{kind}-forget_{k}"
    return c.validate()


def run_sequence(
    kind: SequenceKind,
    cfg: RunConfig,
    output_dir: str | Path,
    *,
    source: str | None = None,
    target: str | None = None,
    tokenizer: Any | None = None,
    retain_rows: Any | None = None,
    eval_data: Mapping[str, Any] | None = None,
    retrain_logs: str | Path | None = None,
    retrain_auc: float | str | None = None,
    requests: Sequence[int] = (1, 2, 3, 4),
    eval_batch_size: int = 32,
    overwrite: bool = False,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
) -> SequenceResult:
    """Run MUSE's scalability (``kind="scal"``) or sustainability (``"sust"``) requests.

    Args:
        kind: ``"scal"`` (every request from the target) or ``"sust"`` (chained).
        cfg: the run config of every request (its ``data.forget_split`` is replaced by the
            request's fold, ``output.dir`` by the request's folder).
        output_dir: ``<out>``; request ``k`` writes ``<out>/<kind>/forget_k/``.
        source: MUSE data (default `muse_source`).
        target: the target model's hub id or folder (default ``cfg.model.name_or_path``).
        tokenizer: its tokenizer (loaded with the target by default).
        retain_rows: the retain corpus (default ``data.retain_split`` or ``retain1``).
        eval_data: MUSE evaluation splits (``"config/split"`` → rows); ``None`` loads them
            from ``source``; ``{}`` skips evaluation.
        retrain_logs, retrain_auc: PrivLeak's reference (see `evaluate_muse`).
        requests: which requests to run, in order (sustainability needs ``1..k`` consecutive).
        eval_batch_size: evaluation batch size.
        overwrite: delete a request folder that already exists instead of failing.
        baselines: extra rows for the table (``{"target": results, "retrain": results}``).

    Returns:
        A `SequenceResult` with one `RequestRecord` per request and the table.

    Raises:
        FileExistsError: a request folder exists and ``overwrite`` is false.
        RuntimeError: a sustainability request did not start from its predecessor's weights.
    """
    from constrained_unlearn.evaluation.provenance import data_fingerprint, weights_hash

    if kind not in SEQUENCE_KINDS:
        raise ValueError(f"kind must be 'scal' or 'sust', got {kind!r}")
    requests = list(requests)
    if not requests or any(k not in (1, 2, 3, 4) for k in requests):
        raise ValueError(f"requests must be a non-empty subset of 1..4, got {requests}")
    if kind == "sust" and requests != list(range(1, len(requests) + 1)):
        raise ValueError(
            f"sustainability requests chain: run 1..k in order, got {requests} "
            "(request k starts from the model of request k - 1)"
        )
    cfg.validate()
    source = source or muse_source(cfg)
    target_path = target or cfg.model.name_or_path
    if not target_path:
        raise ValueError("no target model: set model.name_or_path or pass target=")
    if retain_rows is None:
        retain_rows = load_corpus(source, cfg.data.retain_split or "retain1", "data.retain_split")
    if eval_data is None:
        from constrained_unlearn.benchmarks.minimuse import muse_eval_data

        eval_data = muse_eval_data(source)
    out = Path(output_dir)
    folders = {k: out / kind / f"forget_{k}" for k in requests}
    for folder in folders.values():  # fail before any compute
        if folder.exists() and not overwrite:
            _claim_folder(folder, overwrite=False)

    result = SequenceResult(kind=kind, baselines={k: dict(v) for k, v in (baselines or {}).items()})
    previous: RequestRecord | None = None
    model: Any = None
    for k in requests:
        folder = folders[k]
        _claim_folder(folder, overwrite)
        if kind == "scal" or previous is None:
            model, loaded_tokenizer = load_model_and_tokenizer(target_path, dtype=cfg.model.dtype)
            tokenizer = tokenizer or loaded_tokenizer
            start_from = "target"
        else:
            start_from = str(previous.folder)
        start_weights = weights_hash(model)
        if previous is not None and kind == "sust" and start_weights != previous.final_weights:
            raise RuntimeError(
                f"sust request {k} does not start from the weights request {k - 1} produced"
            )
        forget_rows = load_corpus(source, f"{kind}/forget_{k}")
        request_cfg = _request_config(cfg, kind, k, folder)
        unlearned = unlearn_corpus(
            request_cfg,
            forget_rows,
            retain_rows,
            model=model,
            tokenizer=tokenizer,
            tags={"sequence": kind, "request": str(k)},
        )
        model = unlearned.model
        record = RequestRecord(
            kind=kind,
            k=k,
            forget_split=f"{kind}/forget_{k}",
            folder=folder,
            forget_documents=len(forget_rows),
            forget_fingerprint=data_fingerprint([{"text": str(r["text"])} for r in forget_rows]),
            start_from=start_from,
            start_weights=start_weights,
            final_weights=weights_hash(model),
            retain_loss=(
                unlearned.initial_values["retain"],
                unlearned.bounds["retain"],
                unlearned.final_retain_loss,
            ),
        )
        if eval_data:
            record.results = evaluate_muse(
                model,
                tokenizer,
                eval_data,
                folder / "eval",
                retrain_logs=retrain_logs,
                retrain_auc=retrain_auc,
                batch_size=eval_batch_size,
            )
        (folder / "request.json").write_text(json.dumps(record.as_dict(), indent=2))
        result.requests.append(record)
        previous = record
    result.table = format_sequence_table(result)
    (out / kind / "table.md").write_text(result.table + "\n")
    return result


def run_scalability(cfg: RunConfig, output_dir: str | Path, **kwargs: Any) -> SequenceResult:
    """`run_sequence` with ``kind="scal"``: ``scal/forget_k`` from the target each time."""
    return run_sequence("scal", cfg, output_dir, **kwargs)


def run_sustainability(cfg: RunConfig, output_dir: str | Path, **kwargs: Any) -> SequenceResult:
    """`run_sequence` with ``kind="sust"``: ``sust/forget_k`` chained from request k−1."""
    return run_sequence("sust", cfg, output_dir, **kwargs)


def format_sequence_table(result: SequenceResult) -> str:
    """One Markdown table: baselines, then one row per request (fold size, the four headline
    metrics, retain loss against ε)."""
    titles = " | ".join(title for _, title in HEADLINE_METRICS)
    lines = [
        f"| model | forget docs | {titles} | retain loss: start → end (ε) |",
        "|---|---|" + "---|" * len(HEADLINE_METRICS) + "---|",
    ]
    for name, results in result.baselines.items():
        cells = " | ".join(metric_cell(results, key) for key, _ in HEADLINE_METRICS)
        lines.append(f"| {name} | — | {cells} | — |")
    for r in result.requests:
        cells = " | ".join(metric_cell(r.results, key) for key, _ in HEADLINE_METRICS)
        start, bound, final = r.retain_loss
        lines.append(
            f"| {r.forget_split} | {r.forget_documents} | {cells} | "
            f"{start:.3f} → {final:.3f} ({bound:.3f}) |"
        )
    return "\n".join(lines)
