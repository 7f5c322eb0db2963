"""Recipe: unlearn a QA split from a causal LM with any method and solver.

    config → model + tokenizer → forget/retain QA datasets → PairedData
           → terms function → UnlearningEngine.fit() → saved model → (evaluation) → MLflow

Every step is a call into the layers below; this file only wires them.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from constrained_unlearn.engine import (
    Callback,
    EngineConfig,
    History,
    PairedData,
    UnlearningEngine,
)
from constrained_unlearn.llm import (
    PadCollator,
    PromptTemplate,
    QADataset,
    load_model_and_tokenizer,
)
from constrained_unlearn.losses import next_token_alignment, token_nll
from constrained_unlearn.methods import MethodSetup, get_method
from constrained_unlearn.recipes.config import RunConfig
from constrained_unlearn.tracking import MlflowRun


@dataclass
class UnlearnResult:
    """What a run produced."""

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


def solver_overrides(cfg: RunConfig) -> dict[str, Any]:
    """Solver hyper-parameters the config sets explicitly (the rest: the method's defaults)."""
    m = cfg.method
    kwargs: dict[str, Any] = {
        "warmup_epochs": m.warmup_epochs,
        "warmup_steps": m.warmup_steps,
        "dual_update": m.dual_update,
    }
    if m.multiplier_init is not None:
        kwargs["multiplier_init"] = m.multiplier_init
    if m.dual_lr is not None:
        kwargs["dual_lr"] = m.dual_lr
    kwargs.update(m.solver_options)
    return kwargs


@torch.no_grad()
def mean_answer_nll(
    model: torch.nn.Module, dataset: QADataset, pad_id: int, batch_size: int = 32
) -> float:
    """Token NLL of the answers of ``dataset``, averaged over all supervised tokens."""
    was_training = model.training
    model.eval()
    collate = PadCollator(pad_id, "right")
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        shifted, targets, mask = next_token_alignment(logits, batch["labels"])
        n = int(mask.sum())
        total += float(token_nll(shifted, targets, mask)) * n
        count += n
    model.train(was_training)
    return total / max(count, 1)


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
        **solver_overrides(cfg),
    )


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
        cfg: the validated run config.
        splits: ``{split name: rows}`` with at least the forget and retain splits.
        model: an already loaded model (default: load ``cfg.model.name_or_path``).
        tokenizer: its tokenizer (loaded with the model by default).
        callbacks: extra engine callbacks.
        tags: extra MLflow tags.
        after_training: called with the result (and the MLflow run) before the run is closed,
            e.g. to evaluate and log metrics into the same run.
    """
    cfg.validate()
    forget_split = cfg.data.forget_split
    retain_split = cfg.data.retain_split or _complement(forget_split)
    for split in (forget_split, retain_split):
        if split not in splits:
            raise KeyError(f"split {split!r} not found; available: {sorted(splits)}")
    if model is None or tokenizer is None:
        model, tokenizer = load_model_and_tokenizer(
            cfg.model.name_or_path,
            dtype=cfg.model.dtype,
            trust_remote_code=cfg.model.trust_remote_code,
        )
    overlap = count_overlap(splits[forget_split], splits[retain_split])
    if overlap:
        warnings.warn(
            f"{overlap} question-answer pairs of {forget_split!r} also appear in "
            f"{retain_split!r}: the retain constraint will hold on to what the forget objective "
            "removes. Make the splits disjoint.",
            stacklevel=2,
        )
    template = PromptTemplate(kind=cfg.model.template)  # type: ignore[arg-type]
    forget = QADataset(
        splits[forget_split], tokenizer, template=template, max_length=cfg.data.max_length
    )
    retain = QADataset(
        splits[retain_split], tokenizer, template=template, max_length=cfg.data.max_length
    )
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
) -> UnlearnResult:
    """Unlearn ``forget`` from ``model`` keeping ``retain``: the part shared by QA and corpus runs.

    ``forget``/``retain`` are datasets of ``{"input_ids", "labels"}`` items (:class:`QADataset`,
    :class:`~constrained_unlearn.llm.corpus.CorpusDataset`). Builds the paired data, the method's
    terms and solver, the engine (with checkpoints under ``<output.dir>/checkpoints``) and the
    MLflow run; trains; saves the model, ``history.json`` and ``train_summary.json`` (with
    ``summary`` merged in, and ``truncated`` — prompts cut per split, QA runs — as
    ``truncated_prompts``); calls ``after_training``; closes the run with its honest status.
    """
    collate = PadCollator(int(tokenizer.pad_token_id), "right")
    t = cfg.training
    data = PairedData(
        forget,
        retain,
        batch_size=t.batch_size,
        retain_batch_size=t.retain_batch_size,
        collate_fn=collate,
        seed=t.seed,
    )
    engine_config = EngineConfig(
        epochs=t.epochs,
        max_steps=t.max_steps,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        max_grad_norm=t.max_grad_norm,
        lr_scheduler=t.lr_scheduler,  # type: ignore[arg-type]
        lr_warmup_ratio=t.lr_warmup_ratio,
        mixed_precision=t.mixed_precision,  # type: ignore[arg-type]
        seed=t.seed,
        progress=progress,
        checkpoint_dir=Path(cfg.output.dir) / "checkpoints",
        save_every=t.save_every,
        keep_last=t.keep_last,
        save_final=t.save_every is not None,
        resume=t.resume,
    )
    setup = setup_method(cfg, model, tokenizer)
    # record what actually runs: the method's defaults resolved into the config
    cfg.method.solver = setup.solver
    cfg.method.multiplier_init = setup.solver_kwargs.get("multiplier_init")
    cfg.method.dual_lr = setup.solver_kwargs.get("dual_lr")
    engine = UnlearningEngine(
        model,
        data=data,
        **setup.engine_kwargs(),
        optimizer=lambda params: torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay),
        config=engine_config,
        callbacks=list(callbacks),
        run_config=cfg.to_dict(),
    )
    run: MlflowRun | None = None
    if cfg.tracking.enabled and engine.accelerator.is_main_process:
        run = MlflowRun(
            experiment=cfg.tracking.experiment,
            run_name=cfg.tracking.run_name,
            tracking_uri=cfg.tracking.tracking_uri,
            tags={
                "method": cfg.method.name,
                "solver": setup.solver,
                "benchmark": cfg.data.benchmark,
                "split": cfg.data.forget_split,
                "model": cfg.model.name_or_path,
                **(tags or {}),
            },
        )
        run.log_params(cfg.to_dict())
        engine.callbacks.append(run.callback())
    out = Path(cfg.output.dir)
    try:
        history = engine.fit()
        unwrapped: Any = engine.unwrapped_model  # a transformers model (save_pretrained)
        final_retain = mean_answer_nll(unwrapped, retain, int(tokenizer.pad_token_id))
        result = UnlearnResult(
            history=history,
            bounds=engine.problem.require_bounds(),
            initial_values=dict(engine.initial_values),
            final_retain_loss=final_retain,
            output_dir=out,
            model=unwrapped,
            tokenizer=tokenizer,
            run_id=run.run_id if run else None,
            truncated=dict(truncated or {}),
        )
        if engine.accelerator.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
            if cfg.output.save_model:
                unwrapped.save_pretrained(out / "model", safe_serialization=True)
                tokenizer.save_pretrained(out / "model")
            summary = {
                "bounds": result.bounds,
                "initial_values": result.initial_values,
                "final_retain_loss": final_retain,
                **({"truncated_prompts": result.truncated} if truncated is not None else {}),
                **(summary or {}),
            }
            (out / "history.json").write_text(json.dumps(history.to_dicts()))
            (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
        if run is not None:
            run.log_params({f"problem.bound.{k}": v for k, v in result.bounds.items()})
            run.log_metrics(
                {
                    "final/retain_loss": final_retain,
                    "final/retain_bound": result.bounds["retain"],
                    "final/multiplier": result.history.records[-1].multipliers.get(
                        "retain", math.nan
                    ),
                }
            )
            run.log_dict(cfg.to_dict(), "config.yaml")
            if engine.accelerator.is_main_process and len(history):
                from constrained_unlearn.tracking.run_plot import plot_history

                run.log_artifact(
                    plot_history(history, result.bounds, out / "training.png"), "plots"
                )
            if cfg.tracking.log_model and cfg.output.save_model:
                run.client.log_artifacts(run.run_id, str(out / "model"), "model")
        if after_training is not None:
            after_training(result, run)
    except BaseException as err:
        if run is not None:
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            run.end(status, error=f"{type(err).__name__}: {err}")
        raise
    if run is not None:
        run.end("FINISHED")
    return result


def count_overlap(forget_rows: Any, retain_rows: Any) -> int:
    """How many forget (question, answer) pairs also stand in the retain rows."""

    def pairs(rows: Any) -> set[tuple[str, str]]:
        return {(str(rows[i]["question"]), str(rows[i]["answer"])) for i in range(len(rows))}

    try:
        return len(pairs(forget_rows) & pairs(retain_rows))
    except (KeyError, TypeError):  # not QA rows: nothing to compare here
        return 0


def _complement(forget_split: str) -> str:
    """TOFU's retain split for a forget split: forget10 → retain90."""
    if forget_split.startswith("forget") and forget_split[6:].isdigit():
        return f"retain{100 - int(forget_split[6:]):02d}"
    raise ValueError(
        f"cannot derive the retain split of {forget_split!r}; set data.retain_split explicitly"
    )
