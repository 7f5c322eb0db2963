"""Check candidate demo defaults against the goal of issue #17.3, through the demo itself.

    python benchmarks/efficacy/verify_defaults.py --seeds 0 1 2 \\
        --overrides method.solver=alternating-gda method.dual_lr=300

Runs :func:`constrained_unlearn.recipes.demo.run_demo` (the pipeline ``constrained-unlearn demo``
runs: build or cache hit, reference evaluations, PDU, evaluation, MLflow) once per mini-TOFU
build seed with the given overrides appended to the demo's own settings, and checks

* the **median** forget quality over the seeds ≥ 0.5,
* model utility ≥ 0.9 × the target's on **every** seed,
* final retain loss ≤ ε on **every** seed.

Writes ``<out>/verify.json`` (per seed: FQ, MU, target MU, ratio, final L_r, ε, λ_end, wall
time; the verdict of each bar) and prints it.
"""

from __future__ import annotations

__all__ = ["GOAL", "check_goal", "main"]

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from constrained_unlearn.numerics import DOCUMENTED_THREADS, pin_cpu_numerics  # noqa: E402

if __name__ == "__main__":  # documented numbers: the pinned kernels (constrained_unlearn.numerics)
    pin_cpu_numerics()

from protocol import _git_commit, _json_safe, _machine  # noqa: E402
from stats import median  # noqa: E402

GOAL = {"median_forget_quality": 0.5, "utility_ratio": 0.9, "retain_over_epsilon": 1.0}
"""#17.3: median FQ ≥ 0.5; MU / target ≥ 0.9 and L_r / ε ≤ 1 on every seed."""


def check_goal(rows: Sequence[Mapping[str, float]]) -> dict[str, bool]:
    """The three bars of :data:`GOAL` over per-seed rows (``forget_quality``,
    ``utility_ratio``, ``retain_over_epsilon``)."""
    if not rows:
        raise ValueError("check_goal needs at least one seed's row")
    fq = median([float(r["forget_quality"]) for r in rows])
    return {
        "median_forget_quality": fq >= GOAL["median_forget_quality"],
        "utility_every_seed": all(float(r["utility_ratio"]) >= GOAL["utility_ratio"] for r in rows),
        "retain_bound_every_seed": all(
            float(r["retain_over_epsilon"]) <= GOAL["retain_over_epsilon"] for r in rows
        ),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", default="default")
    parser.add_argument("--overrides", nargs="*", default=[])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default="benchmarks/efficacy/results/verify_defaults")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=DOCUMENTED_THREADS,
        help="torch threads of each run (the demo's default)",
    )
    args = parser.parse_args(argv)
    import torch

    from constrained_unlearn.recipes.demo import run_demo
    from constrained_unlearn.recipes.evaluate import agg

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    uri = args.tracking_uri or f"sqlite:///{(out / 'mlflow.db').resolve()}"
    rows = []
    for seed in args.seeds:
        started = time.perf_counter()
        res = run_demo(
            size=args.size,
            seed=seed,
            cache_dir=args.cache_dir,
            output_dir=str(out / f"seed{seed}"),
            tracking_uri=uri,
            overrides=list(args.overrides),
            threads=args.threads,
        )
        result = res["result"]
        target_mu = agg(res["target"], "model_utility")
        bound = float(result.bounds["retain"])
        rows.append(
            {
                "build_seed": seed,
                "forget_quality": agg(res["pdu"], "forget_quality"),
                "model_utility": agg(res["pdu"], "model_utility"),
                "target_model_utility": target_mu,
                "utility_ratio": agg(res["pdu"], "model_utility") / target_mu,
                "forget_rouge": agg(res["pdu"], "forget_Q_A_ROUGE"),
                "final_retain_loss": float(result.final_retain_loss),
                "epsilon": bound,
                "retain_over_epsilon": float(result.final_retain_loss) / bound,
                "lambda_end": float(result.history.series("retain/multiplier")[-1]),
                "seconds": time.perf_counter() - started,
            }
        )
    verdict = check_goal(rows)
    report = {
        "meta": {
            "machine": _machine(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _git_commit(),
            "command": "python benchmarks/efficacy/verify_defaults.py "
            + " ".join(sys.argv[1:] if argv is None else list(argv)),
            "overrides": list(args.overrides),
            "goal": GOAL,
        },
        "seeds": rows,
        "median_forget_quality": median([r["forget_quality"] for r in rows]),
        "verdict": verdict,
        "goal_met": all(verdict.values()),
    }
    (out / "verify.json").write_text(json.dumps(_json_safe(report), indent=2) + "\n")
    print(json.dumps(_json_safe(report), indent=2))
    return report


if __name__ == "__main__":
    main()
