"""PDU with every primal-dual solver, and the scalarised baselines, on mini-TOFU — one table.

Swapping the solver is the only change between the PDU runs (``method.solver=...``, the same
λ₀ and dual step for all: the augmented Lagrangian takes ``dual_lr`` as its dual step and keeps
its default penalty c); the baselines run with their own defaults (the ``penalty`` solver: a
fixed retain weight). Every run is logged to MLflow and evaluated in its run, the target and
retain models as reference runs; ``compare_runs`` then reads them back and writes
``comparison.md``/``.csv`` and the plots (reference points on the Pareto plot, infeasible runs
hollow).

    python examples/compare_solvers.py                       # mini-TOFU "default"
    python examples/compare_solvers.py --size tiny           # plumbing check in a minute
    mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from constrained_unlearn.recipes.config import load_config
from constrained_unlearn.recipes.demo import (
    DEMO_PDU,
    DEMO_TRAINING,
    log_references,
    prepare_minitofu,
)
from constrained_unlearn.recipes.evaluate import tofu_evaluation
from constrained_unlearn.recipes.llm_unlearn import run_unlearning
from constrained_unlearn.tracking.compare import compare_runs

PDU_SOLVERS = ("gda", "alternating-gda", "extragradient", "augmented-lagrangian", "nupi")
BASELINES = ("grad-ascent", "grad-diff", "npo", "simnpo")


def runs() -> list[tuple[str, str, list[str]]]:
    """``(run name, method, overrides)`` for every run of the comparison."""
    out = []
    for solver in PDU_SOLVERS:
        out.append((f"pdu-{solver}", "pdu", [*DEMO_PDU, f"method.solver={solver}"]))
    for method in BASELINES:
        out.append((method, method, []))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="default")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--output-dir", default="outputs/compare_solvers")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--experiment", default=None, help="default: minitofu-compare-<time>")
    args = parser.parse_args()
    started = time.perf_counter()
    experiment = args.experiment or f"minitofu-compare-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(args.output_dir)
    prepared = prepare_minitofu(size=args.size, cache_dir=args.cache_dir)
    cfg = None
    for name, method, extra in runs():
        print(f"\n=== {name} ===")
        model, tokenizer = prepared.load_target()
        cfg = load_config(
            None,
            [
                *DEMO_TRAINING,
                f"model.name_or_path={prepared.mini.target_path}",
                f"data.minitofu_size={args.size}",
                f"method.name={method}",
                *extra,
                f"output.dir={out / name}",
                "output.save_model=false",
                f"tracking.tracking_uri={args.tracking_uri}",
                f"tracking.experiment={experiment}",
                f"tracking.run_name={name}",
            ],
        )
        evaluate = tofu_evaluation(
            prepared.data,
            retain_logs=prepared.eval_root / "retain",
            output_dir=out / name / "eval",
            **prepared.eval_kwargs,
        )
        run_unlearning(
            cfg, prepared.data, model=model, tokenizer=tokenizer, after_training=evaluate
        )
    if cfg is not None:
        log_references(
            cfg,
            {"target": prepared.target_results, "retain": prepared.retain_results},
            ("forget_quality", "model_utility", "forget_Q_A_ROUGE", "forget_truth_ratio"),
        )
    comparison = compare_runs(experiment, tracking_uri=args.tracking_uri, out_dir=out)
    print()
    print((out / "comparison.md").read_text())
    print(comparison.describe())
    print(f"{len(comparison.table)} runs compared in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
