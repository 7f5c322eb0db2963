"""Evaluate an unlearned model inside its run and log the numbers to the same MLflow run."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from constrained_unlearn.recipes.llm_unlearn import UnlearnResult
from constrained_unlearn.tracking import MlflowRun

__all__ = ["HEADLINE", "agg", "log_evaluation", "tofu_evaluation"]

HEADLINE = (
    "forget_quality",
    "model_utility",
    "forget_Q_A_ROUGE",
    "forget_truth_ratio",
    "forget_Q_A_Prob",
    "privleak",
    "extraction_strength",
)


def agg(results: Mapping[str, Any], key: str) -> float:
    """``results[key]["agg_value"]`` or NaN."""
    value = results.get(key)
    if isinstance(value, Mapping) and value.get("agg_value") is not None:
        return float(value["agg_value"])
    return math.nan


def log_evaluation(run: MlflowRun, results: Mapping[str, Any], output_dir: Path | None) -> None:
    """Headline metrics as ``eval/<name>`` (plus log10 of forget quality) and the JSON reports."""
    metrics = {f"eval/{key}": agg(results, key) for key in HEADLINE}
    fq = agg(results, "forget_quality")
    if fq == fq:
        metrics["eval/forget_quality_log10"] = math.log10(max(fq, 1e-300))
    run.log_metrics(metrics)
    if output_dir is not None:
        for path in sorted(Path(output_dir).glob("*.json")):
            run.log_artifact(path, "eval")


def tofu_evaluation(
    data: Mapping[str, Any],
    *,
    retain_logs: Any,
    output_dir: str | Path,
    tokenization: str | None = None,
    **evaluator_kwargs: Any,
) -> Callable[[UnlearnResult, MlflowRun | None], None]:
    """An ``after_training`` hook: TOFU evaluation of the unlearned model, logged to its run.

    The results land in ``result.evaluation`` and in ``<output_dir>/TOFU_EVAL.json``.

    Args:
        data: ``{TOFU config: rows}``.
        retain_logs: the retain model's log (``None``: no forget quality / privleak).
        output_dir: where the reports go.
        tokenization: ``"joint"`` (open-unlearning's, the convention's default) or
            ``"separate"`` (the library's training encoding); ``None``: the convention's.
            Use the one the retain log was made with.
        **evaluator_kwargs: any other [`TofuEvaluator`][constrained_unlearn.evaluation.TofuEvaluator]
            keyword.
    """
    from constrained_unlearn.evaluation import TofuEvaluator

    def evaluate(result: UnlearnResult, run: MlflowRun | None) -> None:
        evaluator = TofuEvaluator(
            result.model,
            result.tokenizer,
            data,
            retain_logs=retain_logs,
            tokenization=tokenization,
            **evaluator_kwargs,
        )
        result.evaluation = evaluator.evaluate(
            output_dir,
            overwrite=True,
            skip_forget_quality=retain_logs is None,
            skip_privleak=retain_logs is None,
        )
        if run is not None:
            run.log_metrics(
                {"final/retain_loss_over_bound": result.final_retain_loss / result.bounds["retain"]}
            )
            log_evaluation(run, result.evaluation, Path(output_dir))

    return evaluate
