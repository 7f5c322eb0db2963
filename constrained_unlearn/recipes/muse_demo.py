"""The MUSE job at CPU scale: mini-MUSE end to end.

    build (or load from cache) mini-MUSE: news corpus, tokenizer, target and retrained model
    → evaluate retrained and target (the retrained model's log is PrivLeak's reference)
    → unlearn raw/forget from the target with PDU (margin loss on every token of the forget
      documents, retain NLL on raw/retain1 ≤ ε, GDA)
    → evaluate the unlearned model → log to MLflow → print VerbMem, KnowMem, PrivLeak

Evaluations of the target and retrained models are cached in ``<mini-MUSE entry>/evals/``,
keyed by the weights hash and the evaluation settings (a warm run evaluates only the new model).
The same functions run MUSE's scalability and sustainability requests on mini-MUSE
(`run_minimuse_sequence`, CLI ``muse-scal`` / ``muse-sust``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from constrained_unlearn.recipes.config import RunConfig, load_config
from constrained_unlearn.recipes.demo import cached_evaluation, numerics_line, run_label, say_where
from constrained_unlearn.recipes.llm_unlearn import UnlearnResult
from constrained_unlearn.recipes.muse_sequences import (
    HEADLINE_METRICS,
    SequenceResult,
    agg,
    evaluate_muse,
    load_corpus,
    metric_cell,
    run_sequence,
    unlearn_corpus,
)

__all__ = [
    "EVAL_BATCH_SIZE",
    "MUSE_DEMO_OVERRIDES",
    "MiniMuseBaselines",
    "bar_checks",
    "format_muse_table",
    "prepare_minimuse",
    "run_minimuse_sequence",
    "run_muse_demo",
]

MUSE_DEMO_OVERRIDES: tuple[str, ...] = (
    # tuned on mini-MUSE "default" (docs/muse.md): the memorised target's retain NLL is ≈0.08,
    # so a violation is ≈0.01-0.1 nats and λ needs a large dual step to react within a run
    "method.name=pdu",
    "method.solver=gda",
    "method.slack=0.1",
    "method.multiplier_init=100.0",
    "method.dual_lr=500.0",
    "method.warmup_epochs=0",
    "training.epochs=15",
    "training.lr=3e-4",
    "training.weight_decay=0.0",
    "training.batch_size=4",
    "training.max_grad_norm=1.0",
    "data.chunk_length=256",
    "data.pack=false",
    "data.forget_split=forget",
    "data.retain_split=retain1",
)
"""The demo's run settings (command-line overrides come after them)."""

EVAL_BATCH_SIZE = 64


@dataclass
class MiniMuseBaselines:
    """A built mini-MUSE with its evaluation data and both reference models' results."""

    mini: Any
    eval_data: dict[str, Any]
    retrain_log_dir: Path
    retrain: dict[str, Any]
    target: dict[str, Any]


def prepare_minimuse(
    *, size: str = "default", seed: int = 0, cache_dir: str | None = None
) -> MiniMuseBaselines:
    """Build (or load) mini-MUSE and evaluate its retrained and target models (cached)."""
    from constrained_unlearn.benchmarks.minimuse import build_minimuse
    from constrained_unlearn.evaluation.muse import write_retrain_log

    mini = build_minimuse(seed=seed, size=size, cache_dir=cache_dir, progress=True)
    eval_data = mini.eval_data()
    eval_root = Path(mini.root) / "evals"
    tokenizer = mini.load_tokenizer()
    from constrained_unlearn.evaluation.muse import MuseEvaluator

    retrain_model = mini.load_retrain()
    probe = MuseEvaluator(retrain_model, tokenizer, eval_data, batch_size=EVAL_BATCH_SIZE)
    cached = cached_evaluation(probe, eval_root / "retrain", "MUSE")
    print(
        "the retrained model: cached results reused" if cached else "evaluating the retrained model"
    )
    retrain = write_retrain_log(
        retrain_model,
        tokenizer,
        eval_data,
        eval_root / "retrain",
        batch_size=EVAL_BATCH_SIZE,
    )
    del retrain_model, probe
    target_model = mini.load_target()
    probe = MuseEvaluator(
        target_model,
        tokenizer,
        eval_data,
        batch_size=EVAL_BATCH_SIZE,
        retrain_logs=eval_root / "retrain",
    )
    cached = cached_evaluation(probe, eval_root / "target", "MUSE")
    print("the target model: cached results reused" if cached else "evaluating the target model")
    del probe
    target = evaluate_muse(
        target_model,
        tokenizer,
        eval_data,
        eval_root / "target",
        retrain_logs=eval_root / "retrain",
        batch_size=EVAL_BATCH_SIZE,
    )
    return MiniMuseBaselines(mini, eval_data, eval_root / "retrain", retrain, target)


def format_muse_table(rows: Sequence[tuple[str, dict[str, Any], str]]) -> str:
    """A Markdown table: one row per model, MUSE's four headline metrics and the retain loss."""
    titles = " | ".join(title for _, title in HEADLINE_METRICS)
    lines = [f"| model | {titles} | retain loss vs ε |", "|---|" + "---|" * 5]
    for name, results, retain_text in rows:
        cells = " | ".join(metric_cell(results, key) for key, _ in HEADLINE_METRICS)
        lines.append(f"| {name} | {cells} | {retain_text} |")
    return "\n".join(lines)


def bar_checks(
    target: dict[str, Any], retrain: dict[str, Any], unlearned: dict[str, Any]
) -> dict[str, float]:
    """The demo's three ratios: target / retrained VerbMem (want ≥ 3), unlearned / retrained
    VerbMem (want ≤ 1.5) and unlearned / target retain KnowMem (want ≥ 0.9)."""
    v_ret = agg(retrain, "forget_verbmem_ROUGE")
    return {
        "verbmem_target_over_retrain": _ratio(agg(target, "forget_verbmem_ROUGE"), v_ret),
        "verbmem_unlearned_over_retrain": _ratio(agg(unlearned, "forget_verbmem_ROUGE"), v_ret),
        "knowmem_retain_unlearned_over_target": _ratio(
            agg(unlearned, "retain_knowmem_ROUGE"), agg(target, "retain_knowmem_ROUGE")
        ),
    }


def _ratio(a: float, b: float) -> float:
    """``a / b``; ``inf`` for ``a > 0 = b`` and NaN for ``0 / 0`` (a tiny model scores 0)."""
    if b == 0:
        return math.inf if a > 0 else math.nan
    return a / b


def _demo_config(
    mini: Any, *, size: str, seed: int, out: Path, tracking_uri: str | None, extra: Sequence[str]
) -> RunConfig:
    return load_config(
        None,
        [
            *MUSE_DEMO_OVERRIDES,
            f"model.name_or_path={mini.target_path}",
            "data.benchmark=minimuse",
            f"data.path={mini.data_dir}",
            f"data.minimuse_size={size}",
            f"data.minimuse_seed={seed}",
            f"output.dir={out}",
            "output.save_model=true",
            "tracking.run_name=muse-demo-pdu",
            *([f"tracking.tracking_uri={tracking_uri}"] if tracking_uri else []),
            *extra,
        ],
    )


def run_muse_demo(
    *,
    size: str = "default",
    seed: int = 0,
    cache_dir: str | None = None,
    output_dir: str = "outputs/muse_demo",
    tracking_uri: str | None = None,
    overrides: Sequence[str] = (),
    threads: int | None = None,
) -> dict[str, Any]:
    """Run the mini-MUSE demo and print the table.

    Returns:
        ``{"target": results, "retrain": results, "pdu": results, "result": UnlearnResult,
        "bars": bar_checks(...), "seconds": wall time}``.
    """
    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    out = Path(output_dir)
    base = prepare_minimuse(size=size, seed=seed, cache_dir=cache_dir)
    mini = base.mini
    cfg = _demo_config(
        mini, size=size, seed=seed, out=out / "pdu", tracking_uri=tracking_uri, extra=overrides
    )
    source = str(mini.data_dir)
    forget = load_corpus(source, cfg.data.forget_split)
    retain = load_corpus(source, cfg.data.retain_split or "retain1", "data.retain_split")
    target = mini.load_target()
    tokenizer = mini.load_tokenizer()
    holder: dict[str, Any] = {}

    def evaluate_and_log(result: UnlearnResult, run: Any) -> None:
        print("evaluating the unlearned model")
        results = evaluate_muse(
            result.model,
            tokenizer,
            base.eval_data,
            out / "pdu" / "eval",
            retrain_logs=base.retrain_log_dir,
            batch_size=EVAL_BATCH_SIZE,
            overwrite=True,
        )
        holder["pdu"] = results
        if run is not None:
            run.log_metrics({f"eval/{key}": agg(results, key) for key, _ in HEADLINE_METRICS})
            for name in ("MUSE_EVAL.json", "MUSE_SUMMARY.json"):
                path = out / "pdu" / "eval" / name
                if path.exists():
                    run.log_artifact(path, "eval")

    print(f"unlearning {cfg.data.forget_split} ({len(forget)} documents) with PDU")
    result = unlearn_corpus(
        cfg, forget, retain, model=target, tokenizer=tokenizer, after_training=evaluate_and_log
    )
    bound, start = result.bounds["retain"], result.initial_values["retain"]
    table = format_muse_table(
        [
            ("target", base.target, f"{start:.3f} (start)"),
            ("retrained", base.retrain, "—"),
            (
                run_label(cfg, result),
                holder["pdu"],
                f"{result.final_retain_loss:.3f} vs ε = {bound:.3f}",
            ),
        ]
    )
    bars = bar_checks(base.target, base.retrain, holder["pdu"])
    lambdas = result.history.series("retain/multiplier")
    seconds = time.perf_counter() - started
    print()
    print(table)
    print()
    print(
        f"VerbMem target/retrained {bars['verbmem_target_over_retrain']:.2f}× (want ≥ 3), "
        f"PDU/retrained {bars['verbmem_unlearned_over_retrain']:.2f}× (want ≤ 1.5); "
        f"KnowMem retain PDU/target {bars['knowmem_retain_unlearned_over_target']:.2f} "
        "(want ≥ 0.9)"
    )
    print(
        f"λ: {lambdas[0]:.3g} → {lambdas[-1]:.3g} over {len(lambdas)} steps; retain loss at "
        f"start {start:.3f}, ε = {bound:.3f}, after {result.final_retain_loss:.3f}"
    )
    print(numerics_line())
    print(f"MUSE demo finished in {seconds:.0f} s; outputs in {out}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_table.md").write_text(table + "\n")
    print(say_where(result.run_id, cfg.tracking.tracking_uri))
    return {
        "target": base.target,
        "retrain": base.retrain,
        "pdu": holder["pdu"],
        "result": result,
        "bars": bars,
        "seconds": seconds,
    }


def run_minimuse_sequence(
    kind: str,
    *,
    size: str = "default",
    seed: int = 0,
    cache_dir: str | None = None,
    output_dir: str = "outputs/muse_sequences",
    tracking_uri: str | None = None,
    overrides: Sequence[str] = (),
    requests: Sequence[int] = (1, 2, 3, 4),
    overwrite: bool = False,
    evaluate: bool = True,
    threads: int | None = None,
) -> SequenceResult:
    """Scalability (``kind="scal"``) or sustainability (``"sust"``) on mini-MUSE with the
    demo's PDU settings; prints and returns the table (target and retrained rows first)."""
    if threads:
        torch.set_num_threads(threads)
    base = prepare_minimuse(size=size, seed=seed, cache_dir=cache_dir)
    out = Path(output_dir)
    cfg = _demo_config(
        base.mini,
        size=size,
        seed=seed,
        out=out,
        tracking_uri=tracking_uri,
        extra=["tracking.run_name=muse-demo-pdu", *overrides],
    )
    result = run_sequence(
        kind,  # type: ignore[arg-type]
        cfg,
        out,
        source=str(base.mini.data_dir),
        eval_data=base.eval_data if evaluate else {},
        retrain_logs=base.retrain_log_dir,
        requests=requests,
        eval_batch_size=EVAL_BATCH_SIZE,
        overwrite=overwrite,
        baselines={"target": base.target, "retrained": base.retrain},
    )
    print()
    print(result.table)
    return result
