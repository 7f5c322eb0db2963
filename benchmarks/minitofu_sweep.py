"""Sweep PDU's ε, λ₀, dual step and learning rate on mini-TOFU forget10.

Each configuration unlearns the cached target model and is evaluated against the retain log;
one Markdown row per configuration (forget quality, model utility relative to the target,
forget ROUGE-L, final retain loss vs ε, λ at the end) goes to stdout, and every run is logged to
MLflow (experiment ``minitofu-sweep``) so the trajectories of λ can be compared there.

    python benchmarks/minitofu_sweep.py --grid default
    python benchmarks/minitofu_sweep.py --grid solvers     # each solver over its own dual step

The ``solvers`` grid gives every solver other than gda a small sweep of its dual step (η, or the
penalty c of the augmented Lagrangian, whose dual step *is* c) at the demo's ε, λ₀ and lr, so
that the solver comparison can use each solver's best setting instead of gda's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import subprocess
import time
from datetime import date
from pathlib import Path

from constrained_unlearn.recipes.config import load_config
from constrained_unlearn.recipes.demo import DEMO_PDU, DEMO_TRAINING, prepare_minitofu
from constrained_unlearn.recipes.evaluate import agg, tofu_evaluation
from constrained_unlearn.recipes.llm_unlearn import run_unlearning

GRIDS = {
    # mini-TOFU's retain loss starts near 1e-3 (the retain set is memorised), so violations
    # are ~1e-2 and the dual step must be large for λ to move: η in the hundreds, not PDU's 5.
    "default": {
        "method.epsilon": [0.03, 0.06],
        "method.multiplier_init": [50.0],
        "method.dual_lr": [200.0, 1000.0],
        "training.lr": [5e-4, 1e-3],
    },
    "focus": {
        "method.epsilon": [0.03],
        "method.multiplier_init": [20.0],
        "method.dual_lr": [5.0, 20.0, 50.0],
        "training.lr": [1e-3],
        "training.lr_scheduler": ["constant", "cosine"],
    },
    "wide": {
        "method.epsilon": [0.03],
        "method.multiplier_init": [20.0],
        "method.dual_lr": [50.0, 100.0, 200.0],
        "training.lr": [5e-4, 1e-3],
        "training.epochs": [8, 12],
    },
    "small": {"method.epsilon": [0.05], "method.multiplier_init": [20.0], "training.lr": [1e-3]},
}


def _solver_configurations() -> list[dict[str, object]]:
    # the demo's PDU settings (DEMO_PDU: ε 0.03, λ₀ 20, no warm-up), only the dual step varies
    base: dict[str, object] = {k: v for k, v in (o.split("=", 1) for o in DEMO_PDU)}
    base.pop("method.dual_lr")
    out: list[dict[str, object]] = []
    for solver in ("alternating-gda", "extragradient", "nupi"):
        for eta in (30.0, 100.0, 300.0):  # 100 is the demo's (gda-tuned) value
            out.append({**base, "method.solver": solver, "method.dual_lr": eta})
    for penalty in (1.0, 5.0, 20.0):
        out.append(
            {
                **base,
                "method.solver": "augmented-lagrangian",
                "method.solver_options": f"{{penalty: {penalty}}}",
            }
        )
    return out


def configurations(grid: str) -> list[dict[str, object]]:
    """The overrides of every run of ``grid``: a product grid, or the per-solver list."""
    if grid == "solvers":
        return _solver_configurations()
    spec = GRIDS[grid]
    keys = list(spec)
    return [dict(zip(keys, values)) for values in itertools.product(*(spec[k] for k in keys))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", default="default", choices=[*sorted(GRIDS), "solvers"])
    parser.add_argument("--size", default="default")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--output-dir", default="outputs/sweep")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides applied to every run")
    args = parser.parse_args()
    prepared = prepare_minitofu(size=args.size, cache_dir=args.cache_dir)
    target_mu = agg(prepared.target_results, "model_utility")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        "| solver | ε | λ₀ | η (or c) | lr | schedule | forget quality | MU / target MU | "
        "forget ROUGE-L | final L_r / ε | λ end | s | date | commit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    out = Path(args.output_dir)
    for row in configurations(args.grid):
        overrides = [f"{k}={v}" for k, v in row.items()]
        name = "_".join(
            re.sub(r"[^A-Za-z0-9.-]+", "", f"{k.split('.')[-1]}{v}") for k, v in row.items()
        )
        model, tokenizer = prepared.load_target()
        cfg = load_config(
            None,
            [
                *DEMO_TRAINING,
                f"model.name_or_path={prepared.mini.target_path}",
                *overrides,
                *args.extra,
                f"output.dir={out / name}",
                "output.save_model=false",
                f"tracking.tracking_uri={args.tracking_uri}",
                "tracking.experiment=minitofu-sweep",
                f"tracking.run_name={name}",
            ],
        )
        evaluate = tofu_evaluation(
            prepared.data,
            retain_logs=prepared.eval_root / "retain",
            output_dir=out / name / "eval",
            **{**prepared.eval_kwargs, "progress": False},
        )
        start = time.perf_counter()
        result = run_unlearning(
            cfg, prepared.data, model=model, tokenizer=tokenizer, after_training=evaluate
        )
        seconds = time.perf_counter() - start
        ev = result.evaluation or {}
        m = cfg.method
        step = f"c = {m.solver_options['penalty']}" if "penalty" in m.solver_options else m.dual_lr
        print(
            f"| {m.solver or 'gda'} | {m.epsilon} | {m.multiplier_init} | {step} | "
            f"{cfg.training.lr} | {cfg.training.lr_scheduler} | "
            f"{agg(ev, 'forget_quality'):.3g} | {agg(ev, 'model_utility') / target_mu:.3f} | "
            f"{agg(ev, 'forget_Q_A_ROUGE'):.3f} | {result.final_retain_loss / result.bounds['retain']:.3f} | "
            f"{result.history.records[-1].multipliers['retain']:.3g} | {seconds:.0f} | {date.today()} | {commit} |",
            flush=True,
        )
        (out / name / "lambda.json").write_text(
            json.dumps(result.history.series("retain/multiplier"))
        )


if __name__ == "__main__":
    main()
