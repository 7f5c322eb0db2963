"""Recipe: unlearn a QA split from a causal LM with any method and solver.

    config → preflight (output folder writable, tracking store reachable)
           → model + tokenizer (vocabulary checked against the embeddings)
           → forget/retain QA datasets (identical sets refused) → PairedData
           → terms function → UnlearningEngine.fit() → final retain loss vs ε (feasibility)
           → saved model (written aside, renamed when complete) → (evaluation) → MLflow

Every step is a call into the layers below; this file only wires them. The caller's
`RunConfig` is never modified: what actually ran (the
method's default solver and λ₀ resolved, …) is recorded separately as the *resolved*
configuration — in ``<output.dir>/config.yaml``, ``train_summary.json`` and the MLflow
parameters.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from constrained_unlearn.engine import (
    Callback,
    History,
    PairedData,
    UnlearningEngine,
)
from constrained_unlearn.engine.feasibility import check_feasibility, warn_if_infeasible
from constrained_unlearn.engine.runtime import adamw
from constrained_unlearn.engine.signature import dataset_fingerprint
from constrained_unlearn.llm import (
    PadCollator,
    PromptTemplate,
    QADataset,
    load_model_and_tokenizer,
)
from constrained_unlearn.llm.loading import check_vocabulary
from constrained_unlearn.losses import next_token_alignment, token_nll
from constrained_unlearn.methods import MethodSetup, get_method
from constrained_unlearn.recipes.config import ConfigError, RunConfig
from constrained_unlearn.recipes.output_dir import OutputFolderError, check_output_dir
from constrained_unlearn.solvers import SHARED_HYPERPARAMETERS, make_solver
from constrained_unlearn.tracking import MlflowRun

__all__ = [
    "OutputFolderError",
    "UnlearnResult",
    "check_output_dir",
    "count_overlap",
    "mean_answer_nll",
    "preflight",
    "resolved_config",
    "run_signature",
    "run_unlearning",
    "save_model_atomically",
    "setup_method",
    "train_and_record",
]

logger = logging.getLogger(__name__)


@dataclass
class UnlearnResult:
    """What a run produced.

    Attributes:
        resolved: the configuration that actually ran (method defaults resolved), also in
            ``<output.dir>/config.yaml``.
        feasibility: ``{constraint: FeasibilityReport.to_dict()}`` of the end-of-run check.
        constraint_satisfied: every constraint ended within its bound (and tolerance).
        tracking_degraded: the MLflow run reported degraded tracking (metrics kept locally).
    """

    history: History
    bounds: dict[str, float]
    initial_values: dict[str, float]
    final_retain_loss: float
    output_dir: Path
    model: Any
    tokenizer: Any
    run_id: str | None = None
    truncated: dict[str, int] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    feasibility: dict[str, Any] = field(default_factory=dict)
    constraint_satisfied: bool = True
    tracking_degraded: bool = False

    @property
    def method(self) -> str:
        """The method that ran (``resolved["method"]["name"]``)."""
        return str(self.resolved.get("method", {}).get("name", ""))

    @property
    def solver(self) -> str:
        """The solver that ran (the method's default when the config left it unset)."""
        return str(self.resolved.get("method", {}).get("solver", ""))


@torch.no_grad()
def mean_answer_nll(
    model: torch.nn.Module, dataset: Any, pad_id: int, batch_size: int = 32
) -> float:
    """Token NLL of the supervised tokens of ``dataset``, averaged over all of them.

    With ``N_b`` supervised tokens and mean NLL ``ℓ_b`` in batch ``b``:
    ``L = Σ_b N_b ℓ_b / Σ_b N_b`` (batches of ``batch_size`` items, padded on the right).
    The per-batch sums stay on the device: one host synchronisation at the end.
    """
    was_training = model.training
    model.eval()
    collate = PadCollator(pad_id, "right")
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        shifted, targets, mask = next_token_alignment(logits, batch["labels"])
        n = mask.sum().to(torch.float64)
        total += token_nll(shifted, targets, mask).to(torch.float64) * n
        count += n
    model.train(was_training)
    return float(total / count.clamp_min(1))


def setup_method(cfg: RunConfig, model: Any, tokenizer: Any) -> MethodSetup:
    """Terms, solver and constraint of ``method.name`` (frozen reference only if it needs one).

    Every method gets the same LM options from ``training`` (``fused_forward``,
    ``loss_chunk_size``) and the tokenizer's pad id; a method whose objective cannot be chunked
    refuses ``loss_chunk_size`` by name.
    """
    method = get_method(cfg.method.name, **dict(cfg.method.options))
    lm_options = {
        "fused": cfg.training.fused_forward,
        "chunk_size": cfg.training.loss_chunk_size,
        "pad_token_id": int(tokenizer.pad_token_id),
    }
    return method.setup(
        model,
        tokenizer,
        solver=cfg.method.solver,
        epsilon=cfg.method.epsilon,
        slack=cfg.method.slack,
        lm_options=lm_options,
        **cfg.method.solver_overrides(),
    )


# ---------------------------------------------------------------------------------- preflight
def preflight(cfg: RunConfig) -> None:
    """The checks that must pass before any compute: the output folder is writable and, with
    tracking on, the tracking store can be reached
    (`check_tracking_store`).

    Raises:
        OutputFolderError: the output folder cannot be written.
        TrackingStoreError: the tracking store cannot be used.
    """
    check_output_dir(cfg.output.dir)
    if cfg.tracking.enabled:
        from constrained_unlearn.tracking.preflight import check_tracking_store

        check_tracking_store(cfg.tracking.tracking_uri)


# ---------------------------------------------------------------------------------- records
def resolved_config(cfg: RunConfig, setup: MethodSetup) -> dict[str, Any]:
    """The configuration that actually runs: ``cfg.to_dict()`` with the method's resolved
    solver and hyper-parameters (``method.solver``, every shared solver hyper-parameter,
    ``method.solver_kwargs``). ``cfg`` itself is not modified."""
    resolved = copy.deepcopy(cfg.to_dict())
    method = resolved["method"]
    method["solver"] = setup.solver
    solver = make_solver(setup.solver, **setup.solver_kwargs)
    for key in SHARED_HYPERPARAMETERS:  # the values that run, the solver's defaults included
        value = getattr(solver, key)
        method[key] = dict(value) if isinstance(value, Mapping) else value
    method["solver_kwargs"] = _jsonable(dict(setup.solver_kwargs))
    return resolved


def run_signature(
    resolved: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What determines the run beyond the engine's own settings, flat ``{key: JSON value}``:
    method and its options, solver and its hyper-parameters, ε and slack, model, benchmark and
    splits, sequence length, tokenization, batch sizes, learning rate, weight decay, template
    (plus ``extra``, e.g. a MUSE run's chunking). Stored in checkpoints and compared on resume;
    a key may deliberately change only when listed in ``training.resume_overrides``."""
    m, d, t, model = resolved["method"], resolved["data"], resolved["training"], resolved["model"]
    signature: dict[str, Any] = {
        "method.name": str(m["name"]).lower(),
        "method.options": m["options"],
        "method.solver": m["solver"],
        "method.solver_kwargs": m.get("solver_kwargs", {}),
        "method.epsilon": m["epsilon"],
        "method.slack": m["slack"],
        "model.name_or_path": model["name_or_path"],
        "model.template": model["template"],
        "data.benchmark": d["benchmark"],
        "data.path": d["path"],
        "data.forget_split": d["forget_split"],
        "data.retain_split": d["retain_split"],
        "data.max_length": d["max_length"],
        "data.tokenization": d["tokenization"],
        "training.batch_size": t["batch_size"],
        "training.retain_batch_size": t["retain_batch_size"],
        "training.lr": t["lr"],
        "training.weight_decay": t["weight_decay"],
        "training.fused_forward": t["fused_forward"],
        "training.loss_chunk_size": t["loss_chunk_size"],
        "training.group_by_length": t.get("group_by_length", False),
        "training.group_size": t.get("group_size", 50),
    }
    signature.update(extra or {})
    return _jsonable(signature)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def save_model_atomically(model: Any, tokenizer: Any, folder: str | os.PathLike[str]) -> Path:
    """``save_pretrained`` into a temporary sibling of ``folder``, renamed when complete.

    A failure (a full disk, an interrupt) leaves no folder that looks like a model: the
    temporary one is removed and an existing ``folder`` is kept until the new one is whole.
    """
    final = Path(folder)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` (so the run ends KILLED), also outside the
    engine's own handler (the calibration pass before the first step). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Tracker:
    """Calls into the MLflow run that never stop training: a failure warns once, is recorded
    as degraded tracking, and the run goes on (the tracking layer retries and keeps metrics
    locally; this guards the recipe's own calls)."""

    def __init__(self, run: MlflowRun | None) -> None:
        self.run = run
        self.failed = False

    @property
    def degraded(self) -> bool:
        return self.failed or bool(getattr(self.run, "degraded", False))

    def __call__(self, method: str | Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self.run is None:
            return
        try:
            call = getattr(self.run, method) if isinstance(method, str) else method
            call(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - tracking must never stop training
            if not self.failed:
                warnings.warn(
                    f"MLflow tracking failed ({type(err).__name__}: {err}); training goes on and "
                    "train_summary.json records tracking_degraded=true",
                    RuntimeWarning,
                    stacklevel=3,
                )
            self.failed = True


# ---------------------------------------------------------------------------------- runs
def run_unlearning(
    cfg: RunConfig,
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    model: Any | None = None,
    tokenizer: Any | None = None,
    callbacks: Sequence[Callback] = (),
    tags: Mapping[str, str] | None = None,
    after_training: Callable[[UnlearnResult, MlflowRun | None], None] | None = None,
) -> UnlearnResult:
    """Unlearn ``cfg.data.forget_split`` of ``splits`` from the model.

    Args:
        cfg: the validated run config (not modified).
        splits: ``{split name: rows}`` with at least the forget and retain splits.
        model: an already loaded model (default: load ``cfg.model.name_or_path``).
        tokenizer: its tokenizer (loaded with the model by default).
        callbacks: extra engine callbacks.
        tags: extra MLflow tags.
        after_training: called with the result (and the MLflow run) before the run is closed,
            e.g. to evaluate and log metrics into the same run.

    Raises:
        ConfigError: the forget set is identical to, or contained in, the retain set (unless
            ``data.allow_overlap``).
        OutputFolderError, TrackingStoreError: from `preflight`, before any compute.
    """
    cfg.validate()
    preflight(cfg)
    forget_split = cfg.data.forget_split
    retain_split = cfg.data.retain_split or _complement(forget_split)
    for split in (forget_split, retain_split):
        if split not in splits:
            raise KeyError(f"split {split!r} not found; available: {sorted(splits)}")
    _check_overlap(cfg, splits[forget_split], splits[retain_split], forget_split, retain_split)
    if model is None or tokenizer is None:
        model, tokenizer = load_model_and_tokenizer(
            cfg.model.name_or_path,
            dtype=cfg.model.dtype,
            trust_remote_code=cfg.model.trust_remote_code,
        )
    template = PromptTemplate(kind=cfg.model.template)  # type: ignore[arg-type]
    qa_kwargs: dict[str, Any] = {"template": template, "max_length": cfg.data.max_length}
    if cfg.data.tokenization != "separate":  # the keyword exists once the evaluation side has it
        qa_kwargs["tokenization"] = cfg.data.tokenization
    forget = QADataset(splits[forget_split], tokenizer, **qa_kwargs)
    retain = QADataset(splits[retain_split], tokenizer, **qa_kwargs)
    truncated = {forget_split: forget.num_truncated, retain_split: retain.num_truncated}
    for split, count in truncated.items():
        if count:
            warnings.warn(
                f"{count} prompts of {split!r} were longer than data.max_length="
                f"{cfg.data.max_length} and were truncated from the left (answers are never "
                "truncated); raise data.max_length to keep them whole",
                stacklevel=2,
            )
    return train_and_record(
        cfg,
        forget,
        retain,
        model=model,
        tokenizer=tokenizer,
        callbacks=callbacks,
        tags=tags,
        after_training=after_training,
        truncated=truncated,
    )


def _check_overlap(
    cfg: RunConfig, forget_rows: Any, retain_rows: Any, forget_split: str, retain_split: str
) -> None:
    overlap = count_overlap(forget_rows, retain_rows)
    if not overlap:
        return
    distinct = _distinct_pairs(forget_rows)
    if overlap >= distinct and not cfg.data.allow_overlap:
        what = "identical to" if overlap == _distinct_pairs(retain_rows) else "contained in"
        raise ConfigError(
            f"the forget set {forget_split!r} is {what} the retain set {retain_split!r} (all "
            f"{distinct} question-answer pairs): the retain constraint would hold on to "
            "everything the forget objective removes. Choose disjoint splits, or set "
            "data.allow_overlap=true to run anyway"
        )
    warnings.warn(
        f"{overlap} question-answer pairs of {forget_split!r} also appear in "
        f"{retain_split!r}: the retain constraint will hold on to what the forget objective "
        "removes. Make the splits disjoint.",
        stacklevel=3,
    )


def train_and_record(
    cfg: RunConfig,
    forget: Any,
    retain: Any,
    *,
    model: Any,
    tokenizer: Any,
    summary: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    tags: Mapping[str, str] | None = None,
    after_training: Callable[[UnlearnResult, MlflowRun | None], None] | None = None,
    truncated: Mapping[str, int] | None = None,
    progress: bool = True,
    signature: Mapping[str, Any] | None = None,
) -> UnlearnResult:
    """Unlearn ``forget`` from ``model`` keeping ``retain``: the part shared by QA and corpus runs.

    ``forget``/``retain`` are datasets of ``{"input_ids", "labels"}`` items ([`QADataset`][constrained_unlearn.llm.QADataset],
    [`CorpusDataset`][constrained_unlearn.llm.CorpusDataset]). Builds the paired data, the method's
    terms and solver, the engine (``cfg.engine_config()``: checkpoints under
    ``<output.dir>/checkpoints``, the run signature compared on resume) and the MLflow run;
    trains; checks the final retain loss against ε
    ([`check_feasibility`][constrained_unlearn.engine.check_feasibility], warning when violated);
    saves the model (atomically), ``history.json``, ``train_summary.json`` (with ``summary``
    merged in, ``truncated`` as ``truncated_prompts``, ``constraint_satisfied``,
    ``tracking_degraded``) and ``config.yaml`` (the resolved configuration); calls
    ``after_training``; closes the run with its honest status (SIGTERM → KILLED, also during
    the calibration pass).

    ``cfg`` is not modified. ``signature`` adds keys to `run_signature`.
    """
    cfg.validate()
    preflight(cfg)
    check_vocabulary(model, tokenizer)
    collate = PadCollator(int(tokenizer.pad_token_id), "right")
    t = cfg.training
    data = PairedData(
        forget,
        retain,
        batch_size=t.batch_size,
        retain_batch_size=t.retain_batch_size,
        collate_fn=collate,
        seed=t.seed,
        group_by_length=t.group_by_length,
        group_size=t.group_size,
    )
    engine_config = cfg.engine_config(progress=progress)
    setup = setup_method(cfg, model, tokenizer)
    resolved = resolved_config(cfg, setup)
    engine = UnlearningEngine(
        model,
        data=data,
        **setup.engine_kwargs(),
        optimizer=lambda params: adamw(list(params), lr=t.lr, weight_decay=t.weight_decay),
        config=engine_config,
        callbacks=list(callbacks),
        run_config=resolved,
        run_signature=run_signature(resolved, signature),
    )
    main_process = engine.accelerator.is_main_process
    run: MlflowRun | None = None
    if cfg.tracking.enabled and main_process:
        run = MlflowRun(
            experiment=cfg.tracking.experiment,
            run_name=cfg.tracking.run_name,
            tracking_uri=cfg.tracking.tracking_uri,
            offline_dir=cfg.output.dir,
            tags={
                "method": cfg.method.name,
                "solver": setup.solver,
                "benchmark": cfg.data.benchmark,
                "split": cfg.data.forget_split,
                "model": cfg.model.name_or_path,
                **(
                    {"resume_overrides": ",".join(engine_config.resume_overrides)}
                    if engine_config.resume_overrides
                    else {}
                ),
                **(tags or {}),
            },
        )
    track = _Tracker(run)
    track("log_params", resolved)
    if run is not None:
        engine.callbacks.append(run.callback())
        source = cfg.data.path or cfg.data.benchmark
        for context, split, dataset in (
            ("forget", cfg.data.forget_split, forget),
            ("retain", cfg.data.retain_split or "retain", retain),
        ):
            track(
                "log_dataset",
                f"{cfg.data.benchmark}/{split}",
                dataset_fingerprint(dataset)[:16],
                str(source),
                context,
            )
    out = Path(cfg.output.dir)
    try:
        with _sigterm_as_interrupt():
            history = engine.fit()
            unwrapped: Any = engine.unwrapped_model  # a transformers model (save_pretrained)
            bounds = engine.problem.require_bounds()
            if t.final_retain_eval:
                final_retain = mean_answer_nll(
                    unwrapped, retain, int(tokenizer.pad_token_id), batch_size=cfg.eval.batch_size
                )
                final_source = "retain set"
            else:
                last = history.records[-1] if len(history) else None
                final_retain = last.values["retain"] if last is not None else math.nan
                final_source = "last step"
            last_values = dict(history.records[-1].values) if len(history) else {}
            finals = {name: last_values.get(name, math.nan) for name in bounds}
            finals["retain"] = final_retain
            reports = check_feasibility(finals, bounds, engine_config.feasibility_tolerance)
            warn_if_infeasible(reports)
            satisfied = all(r.satisfied for r in reports.values())
            result = UnlearnResult(
                history=history,
                bounds=bounds,
                initial_values=dict(engine.initial_values),
                final_retain_loss=final_retain,
                output_dir=out,
                model=unwrapped,
                tokenizer=tokenizer,
                run_id=run.run_id if run else None,
                truncated=dict(truncated or {}),
                resolved=resolved,
                feasibility={k: r.to_dict() for k, r in reports.items()},
                constraint_satisfied=satisfied,
            )
            track("set_tags", {"constraint_satisfied": str(satisfied).lower()})
            track("log_params", {f"problem.bound.{k}": v for k, v in bounds.items()})
            track(
                "log_metrics",
                {
                    "final/retain_loss": final_retain,
                    "final/retain_bound": bounds["retain"],
                    "final/multiplier": history.records[-1].multipliers.get("retain", math.nan)
                    if len(history)
                    else math.nan,
                },
            )
            track("log_dict", resolved, "config.yaml")
            if main_process:
                out.mkdir(parents=True, exist_ok=True)
                if cfg.output.save_model:
                    save_model_atomically(unwrapped, tokenizer, out / "model")
                (out / "history.json").write_text(json.dumps(history.to_dicts()))
                _write_yaml(out / "config.yaml", resolved)
                if run is not None and len(history):
                    from constrained_unlearn.tracking.plots import plot_history

                    track(
                        "log_artifact", plot_history(history, bounds, out / "training.png"), "plots"
                    )
                if run is not None and cfg.tracking.log_model and cfg.output.save_model:
                    track("log_artifacts", out / "model", "model")
            if after_training is not None:
                after_training(result, run)
            result.tracking_degraded = track.degraded
            if main_process:
                record = {
                    "bounds": result.bounds,
                    "initial_values": result.initial_values,
                    "final_retain_loss": final_retain,
                    "final_retain_loss_from": final_source,
                    "constraint_satisfied": satisfied,
                    "feasibility": result.feasibility,
                    "tracking_degraded": result.tracking_degraded,
                    "method": result.method,
                    "solver": result.solver,
                    "resume_overrides": list(engine_config.resume_overrides),
                    "resolved_config": resolved,
                    **({"truncated_prompts": result.truncated} if truncated is not None else {}),
                    **(summary or {}),
                }
                (out / "train_summary.json").write_text(
                    json.dumps(_jsonable(record), indent=2) + "\n"
                )
    except BaseException as err:
        if run is not None:
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            try:
                run.end(status, error=f"{type(err).__name__}: {err}")
            except Exception as end_err:  # noqa: BLE001 - the run's own error matters more
                logger.warning("could not set the MLflow run's status to %s: %s", status, end_err)
        raise
    if run is not None:
        track("end", "FINISHED")
    return result


def _write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    import yaml

    path.write_text(yaml.safe_dump(_jsonable(dict(data)), sort_keys=False))


def count_overlap(forget_rows: Any, retain_rows: Any) -> int:
    """How many distinct forget (question, answer) pairs also stand in the retain rows."""
    try:
        return len(_pairs(forget_rows) & _pairs(retain_rows))
    except (KeyError, TypeError):  # not QA rows: nothing to compare here
        return 0


def _pairs(rows: Any) -> set[tuple[str, str]]:
    return {(str(rows[i]["question"]), str(rows[i]["answer"])) for i in range(len(rows))}


def _distinct_pairs(rows: Any) -> int:
    try:
        return len(_pairs(rows))
    except (KeyError, TypeError):
        return 0


def _complement(forget_split: str) -> str:
    """TOFU's retain split for a forget split: forget10 → retain90."""
    if forget_split.startswith("forget") and forget_split[6:].isdigit():
        return f"retain{100 - int(forget_split[6:]):02d}"
    raise ValueError(
        f"cannot derive the retain split of {forget_split!r}; set data.retain_split explicitly"
    )
