"""One trial of the protocol: unlearn with one arm and one setting, evaluate, return a record.

Everything goes through the library's own recipe layer: mini-TOFU through
:func:`~constrained_unlearn.recipes.demo.prepare_minitofu` (the demo's cached build and
reference evaluations) and :func:`~constrained_unlearn.recipes.llm_unlearn.run_unlearning` with
the TOFU evaluation hook; mini-MUSE through :func:`~constrained_unlearn.recipes.muse_demo.
prepare_minimuse` and :func:`~constrained_unlearn.recipes.muse_sequences.unlearn_corpus` with
MUSE's evaluator. Every trial is one MLflow run (tags ``protocol``, ``arm``, ``phase``,
``trial``).
"""

from __future__ import annotations

__all__ = ["Benchmark", "prepare", "run_trial"]

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaces import Arm

from constrained_unlearn.recipes.config import load_config
from constrained_unlearn.recipes.demo import DEMO_TRAINING, prepare_minitofu
from constrained_unlearn.recipes.evaluate import agg as tofu_agg
from constrained_unlearn.recipes.evaluate import tofu_evaluation
from constrained_unlearn.recipes.llm_unlearn import UnlearnResult, run_unlearning
from constrained_unlearn.recipes.muse_demo import (
    EVAL_BATCH_SIZE,
    MUSE_DEMO_OVERRIDES,
    prepare_minimuse,
)
from constrained_unlearn.recipes.muse_sequences import agg as muse_agg
from constrained_unlearn.recipes.muse_sequences import evaluate_muse, load_corpus, unlearn_corpus


@dataclass
class Benchmark:
    """A prepared build: the data, the target's reference numbers and how to run a trial."""

    name: str  # "minitofu" or "minimuse"
    size: str
    seed: int
    prepared: Any
    target_utility: float  # model utility (TOFU) or retain KnowMem (MUSE) of the target


def prepare(name: str, size: str, seed: int, cache_dir: str | None = None) -> Benchmark:
    """Build (or load from the cache) one benchmark build and its reference evaluations."""
    if name == "minitofu":
        p = prepare_minitofu(size=size, seed=seed, cache_dir=cache_dir)
        return Benchmark(name, size, seed, p, tofu_agg(p.target_results, "model_utility"))
    if name == "minimuse":
        m = prepare_minimuse(size=size, seed=seed, cache_dir=cache_dir)
        return Benchmark(name, size, seed, m, muse_agg(m.target, "retain_knowmem_ROUGE"))
    raise ValueError(f"benchmark must be 'minitofu' or 'minimuse', got {name!r}")


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _base_overrides(bench: Benchmark) -> list[str]:
    if bench.name == "minitofu":
        return list(DEMO_TRAINING)
    # the MUSE demo's data and training settings; the method's settings come from the arm
    return [o for o in MUSE_DEMO_OVERRIDES if not o.startswith("method.")]


def run_trial(
    bench: Benchmark,
    arm: Arm,
    params: Mapping[str, Any],
    *,
    unlearn_seed: int,
    output_dir: Path,
    tracking_uri: str,
    phase: str,
    trial: int,
    experiment: str | None = None,
) -> dict[str, Any]:
    """Unlearn ``bench``'s forget set with ``arm`` at ``params`` and evaluate; one MLflow run.

    Returns a flat record: the arm, the setting, the seeds, the headline metrics (mini-TOFU:
    ``forget_quality``, ``model_utility``, ``forget_rouge``, ``privleak``; mini-MUSE:
    ``forget_verbmem``, ``forget_knowmem``, ``retain_knowmem``, ``privleak``),
    ``utility_ratio`` (against this build's target), ``final_retain_loss``, ``epsilon`` (the
    bound the run used), ``retain_over_epsilon``, ``lambda_end`` and ``seconds`` (unlearning +
    evaluation wall time).
    """
    name = f"{arm.slug}-{phase}{trial}-b{bench.seed}s{unlearn_seed}"
    out = output_dir / name
    overrides = [
        *_base_overrides(bench),
        f"method.name={arm.method}",
        f"method.solver={arm.solver}",
        "method.warmup_epochs=0",
        *(f"{k}={_fmt(v)}" for k, v in params.items()),
        f"training.seed={unlearn_seed}",
        f"output.dir={out}",
        "output.save_model=false",
        f"tracking.tracking_uri={tracking_uri}",
        f"tracking.experiment={experiment or f'efficacy-{bench.name}'}",
        f"tracking.run_name={name}",
    ]
    tags = {
        "protocol": "efficacy",
        "arm": arm.label,
        "phase": phase,
        "trial": str(trial),
        "build_seed": str(bench.seed),
    }
    start = time.perf_counter()
    if bench.name == "minitofu":
        p = bench.prepared
        cfg = load_config(
            None,
            [
                f"model.name_or_path={p.mini.target_path}",
                f"data.minitofu_size={bench.size}",
                f"data.minitofu_seed={bench.seed}",
                *overrides,
            ],
        )
        model, tokenizer = p.load_target()
        evaluate = tofu_evaluation(
            p.data,
            retain_logs=p.eval_root / "retain",
            output_dir=out / "eval",
            **{**p.eval_kwargs, "progress": False},
        )
        result = run_unlearning(
            cfg, p.data, model=model, tokenizer=tokenizer, tags=tags, after_training=evaluate
        )
        ev = result.evaluation or {}
        metrics = {
            "forget_quality": tofu_agg(ev, "forget_quality"),
            "model_utility": tofu_agg(ev, "model_utility"),
            "forget_rouge": tofu_agg(ev, "forget_Q_A_ROUGE"),
            "privleak": tofu_agg(ev, "privleak"),
        }
        utility = metrics["model_utility"]
    else:
        m = bench.prepared
        cfg = load_config(
            None,
            [
                f"model.name_or_path={m.mini.target_path}",
                "data.benchmark=minimuse",
                f"data.path={m.mini.data_dir}",
                f"data.minimuse_size={bench.size}",
                f"data.minimuse_seed={bench.seed}",
                *overrides,
            ],
        )
        source = str(m.mini.data_dir)
        forget = load_corpus(source, cfg.data.forget_split)
        retain = load_corpus(source, cfg.data.retain_split or "retain1", "data.retain_split")
        holder: dict[str, Any] = {}

        def evaluate_and_log(result: UnlearnResult, run: Any) -> None:
            results = evaluate_muse(
                result.model,
                result.tokenizer,
                m.eval_data,
                out / "eval",
                retrain_logs=m.retrain_log_dir,
                batch_size=EVAL_BATCH_SIZE,
                overwrite=True,
            )
            holder["results"] = results
            if run is not None:
                run.log_metrics(
                    {
                        f"eval/{key}": muse_agg(results, key)
                        for key in (
                            "forget_verbmem_ROUGE",
                            "forget_knowmem_ROUGE",
                            "retain_knowmem_ROUGE",
                            "privleak",
                        )
                    }
                )

        result = unlearn_corpus(
            cfg,
            forget,
            retain,
            model=m.mini.load_target(),
            tokenizer=m.mini.load_tokenizer(),
            tags=tags,
            after_training=evaluate_and_log,
        )
        ev = holder.get("results", {})
        metrics = {
            "forget_verbmem": muse_agg(ev, "forget_verbmem_ROUGE"),
            "forget_knowmem": muse_agg(ev, "forget_knowmem_ROUGE"),
            "retain_knowmem": muse_agg(ev, "retain_knowmem_ROUGE"),
            "privleak": muse_agg(ev, "privleak"),
        }
        utility = metrics["retain_knowmem"]
    seconds = time.perf_counter() - start
    bound = float(result.bounds["retain"])
    lambdas = result.history.series("retain/multiplier") if len(result.history) else [math.nan]
    target = bench.target_utility
    return {
        "arm": arm.label,
        "slug": arm.slug,
        "method": arm.method,
        "solver": arm.solver,
        "constrained": arm.constrained,
        "phase": phase,
        "trial": trial,
        "build_seed": bench.seed,
        "unlearn_seed": unlearn_seed,
        "params": dict(params),
        **metrics,
        "target_utility": target,
        "utility_ratio": utility / target if target else math.nan,
        "final_retain_loss": float(result.final_retain_loss),
        "epsilon": bound,
        "retain_over_epsilon": float(result.final_retain_loss) / bound if bound else math.nan,
        "lambda_end": float(lambdas[-1]),
        "seconds": seconds,
        "run_id": result.run_id,
    }
