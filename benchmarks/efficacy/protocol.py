"""The efficacy protocol: equal-budget tuning of every method, then unseen seeds, then a table.

    python benchmarks/efficacy/protocol.py --benchmark minitofu --trials 3 --tune-seed 0 \\
        --eval-seeds 1 2 3 --out benchmarks/efficacy/results/minitofu
    python benchmarks/efficacy/protocol.py --quick --out /tmp/quick      # tiny presets, ~1 min

For every arm (:func:`spaces.arms_from_registry`: PDU with each solver, every baseline with its
fixed weight and with the retain constraint, any method registered later included):

1. **tune**: ``--trials`` Optuna trials (trial 0 = the arm's reference setting, then TPE with a
   fixed seed) on the tuning build (``--tune-seed``: mini-TOFU/mini-MUSE build seed and
   unlearning seed); each trial is an MLflow run in experiment ``efficacy-<benchmark>``;
2. **select** the setting by the one rule of :data:`spaces.SELECTION_RULES`, fixed before
   running;
3. **evaluate** that setting on each ``--eval-seeds`` build ``s`` with unlearning seed ``s``, or
   with every ``--unlearn-seeds`` seed (none of them used for tuning);

Each arm's tuning goes to ``<out>/tune/<arm>.json`` and, with its evaluations, to
``<out>/arms/<arm>.json`` as soon as they finish (a re-run skips finished work, so the
protocol can be split across processes with ``--methods`` / ``--solvers``, resumed, and tuned
with ``--phase tune`` while the evaluation builds are still being made). ``--aggregate`` (also
run at the end) reads every arm file and writes
``summary.json`` (per arm: selected setting, admissible or not, median and bootstrap interval
of every metric over the seeds), ``trials.csv``, ``eval.csv``, ``table.md`` and ``pareto.png``
(median forget quality against median utility ratio, bars = bootstrap intervals).
"""

from __future__ import annotations

__all__ = ["aggregate", "evaluate_arm", "main", "tune_arm"]

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":  # documented numbers: the pinned kernels (constrained_unlearn.numerics)
    from constrained_unlearn.numerics import pin_cpu_numerics

    pin_cpu_numerics()

from runner import Benchmark, prepare, run_trial  # noqa: E402
from spaces import (  # noqa: E402
    SELECTION_RULES,
    Arm,
    Param,
    admissible,
    arms_from_registry,
    reference_setting,
    search_space,
    select,
    tuning_score,
)
from stats import summarize  # noqa: E402

METRICS: dict[str, tuple[str, ...]] = {
    "minitofu": (
        "forget_quality",
        "utility_ratio",
        "model_utility",
        "forget_rouge",
        "privleak",
        "retain_over_epsilon",
        "final_retain_loss",
        "lambda_end",
        "seconds",
    ),
    "minimuse": (
        "forget_verbmem",
        "forget_knowmem",
        "retain_knowmem",
        "utility_ratio",
        "privleak",
        "retain_over_epsilon",
        "final_retain_loss",
        "lambda_end",
        "seconds",
    ),
}


def _suggest(trial: Any, p: Param) -> float | int:
    if p.integer:
        return int(trial.suggest_int(p.key, int(p.low), int(p.high)))
    return float(trial.suggest_float(p.key, p.low, p.high, log=p.log))


def tune_arm(
    bench: Benchmark,
    arm: Arm,
    *,
    trials: int,
    out: Path,
    tracking_uri: str,
    sampler_seed: int = 0,
) -> list[dict[str, Any]]:
    """Run ``trials`` Optuna trials of ``arm`` on ``bench``; returns their records in order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = search_space(arm, bench.name)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=sampler_seed)
    )
    study.enqueue_trial(reference_setting(space))
    records: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = {p.key: _suggest(trial, p) for p in space}
        try:
            record = run_trial(
                bench,
                arm,
                params,
                unlearn_seed=bench.seed,
                output_dir=out / "runs",
                tracking_uri=tracking_uri,
                phase="tune",
                trial=trial.number,
            )
            record["score"] = tuning_score(record, bench.name)
        except (RuntimeError, ValueError, FloatingPointError) as err:
            # a setting that breaks the run (NaN loss, a refused option) is a failed trial of
            # this arm, recorded and scored below every run that finished, not a crash
            record = _failed_record(arm, bench, params, trial.number, err)
        records.append(record)
        _progress(record, bench.name)
        return record["score"]

    study.optimize(objective, n_trials=trials)
    return records


def _failed_record(
    arm: Arm, bench: Benchmark, params: dict[str, Any], trial: int, err: BaseException
) -> dict[str, Any]:
    nan = math.nan
    return {
        "arm": arm.label,
        "slug": arm.slug,
        "method": arm.method,
        "solver": arm.solver,
        "constrained": arm.constrained,
        "phase": "tune",
        "trial": trial,
        "build_seed": bench.seed,
        "unlearn_seed": bench.seed,
        "params": dict(params),
        "utility_ratio": nan,
        "final_retain_loss": nan,
        "epsilon": nan,
        "retain_over_epsilon": nan,
        "lambda_end": nan,
        "seconds": nan,
        "error": f"{type(err).__name__}: {err}",
        "score": -3.0,
    }


def evaluate_arm(
    benches: Sequence[Benchmark],
    arm: Arm,
    params: dict[str, Any],
    *,
    out: Path,
    tracking_uri: str,
    unlearn_seeds: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The selected setting on every evaluation build: with ``unlearn_seeds`` ``None`` one run
    per build with unlearning seed = build seed, else one run per (build, unlearning seed)."""
    records = []
    for bench in benches:
        for seed in [bench.seed] if unlearn_seeds is None else list(unlearn_seeds):
            record = run_trial(
                bench,
                arm,
                params,
                unlearn_seed=seed,
                output_dir=out / "runs",
                tracking_uri=tracking_uri,
                phase="eval",
                trial=0,
            )
            records.append(record)
            _progress(record, bench.name)
    return records


def _progress(record: dict[str, Any], benchmark: str) -> None:
    keys = METRICS[benchmark][:5]
    values = " ".join(f"{k}={record.get(k, math.nan):.3g}" for k in keys)
    print(
        f"[{record['phase']} {record['arm']} t{record['trial']} b{record['build_seed']}] "
        f"{values} L_r/ε={record['retain_over_epsilon']:.3g} {record['seconds']:.0f}s",
        flush=True,
    )


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent,
    )
    return done.stdout.strip() or "unknown"


def _machine() -> str:
    import torch

    from constrained_unlearn.numerics import describe_cpu_numerics

    kernels = describe_cpu_numerics()
    return (
        f"{platform.machine()}, {os.cpu_count()} vCPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {kernels['cpu_capability']} kernels, "
        f"MKL {kernels['mkl_cbwr']}"
    )


def run_meta(script: str, argv: Sequence[str] | None) -> dict[str, str]:
    """Provenance of a results file: machine, date, commit and the exact command that ran."""
    return {
        "machine": _machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(),
        "command": f"python {script} " + " ".join(sys.argv[1:] if argv is None else list(argv)),
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _num(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        return float(value)
    return float(value)


def aggregate(out: Path, benchmark: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read ``<out>/arms/*.json``; write summary.json, trials.csv, eval.csv, table.md, pareto.png.

    Returns the summary (``{"meta": …, "arms": [{arm, params, admissible, metrics: {name:
    {median, lo, hi, min, max, n}}}]}``).
    """
    arm_files = sorted((out / "arms").glob("*.json"))
    arms = [json.loads(p.read_text()) for p in arm_files]
    rows = []
    for a in arms:
        evals = a["eval"]
        metrics = {m: summarize([_num(r.get(m)) for r in evals]) for m in METRICS[benchmark]}
        rows.append(
            {
                "arm": a["arm"],
                "slug": a["slug"],
                "constrained": a["constrained"],
                "params": a["selected"]["params"],
                "admissible": a["admissible"],
                "trials": len(a["trials"]),
                "eval_seeds": [r["build_seed"] for r in evals],
                "unlearn_seeds": [r.get("unlearn_seed") for r in evals],
                "metrics": metrics,
                "per_seed": {m: [_num(r.get(m)) for r in evals] for m in METRICS[benchmark]},
            }
        )
    summary = {"meta": {**(meta or {}), "benchmark": benchmark}, "arms": rows}
    (out / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    tuned = [json.loads(p.read_text()) for p in sorted((out / "tune").glob("*.json"))]
    _write_csv(out / "trials.csv", [t for a in tuned for t in a["trials"]])
    (out / "tuning.md").write_text(format_tuning(tuned, benchmark) + "\n")
    _write_csv(out / "eval.csv", [e for a in arms for e in a["eval"]])
    (out / "table.md").write_text(format_table(rows, benchmark) + "\n")
    if rows:
        pareto_plot(rows, benchmark, out / "pareto.png")
    return summary


def _write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    if not records:
        path.write_text("")
        return
    flat = []
    for r in records:
        row = {k: v for k, v in r.items() if k != "params"}
        row.update({f"param:{k}": v for k, v in r.get("params", {}).items()})
        flat.append(row)
    keys: list[str] = []
    for row in flat:
        keys.extend(k for k in row if k not in keys)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(flat)


def _cell(stat: dict[str, Any], fmt: str = ".3g") -> str:
    med = _num(stat["median"])
    if math.isnan(med):
        return "—"
    return f"{med:{fmt}} [{_num(stat['lo']):{fmt}}, {_num(stat['hi']):{fmt}}]"


def format_tuning(tuned: list[dict[str, Any]], benchmark: str) -> str:
    """Every tuning trial of every arm: setting, headline numbers, admissible, selected."""
    first = METRICS[benchmark][:2]
    head = ["arm", "trial", "setting", *first, "final L_r / ε", "λ end", "s", "admissible"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in tuned:
        for t in a["trials"]:
            setting = ", ".join(
                f"{k.split('.')[-1]}={_num(v):.3g}" for k, v in t.get("params", {}).items()
            )
            ok = admissible(t, benchmark)
            mark = " **(selected)**" if t["trial"] == a["selected"]["trial"] else ""
            ratio = _num(t.get("retain_over_epsilon"))
            cells = [
                a["arm"],
                str(t["trial"]),
                setting,
                *(f"{_num(t.get(k)):.3g}" for k in first),
                f"{ratio:.3f}" if t.get("constrained") else f"— ({ratio:.3g})",
                f"{_num(t.get('lambda_end')):.3g}",
                f"{_num(t.get('seconds')):.0f}",
                ("yes" if ok else "no") + mark,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]], benchmark: str) -> str:
    """One Markdown row per arm: median [bootstrap 95 % interval] over the evaluation seeds."""
    if benchmark == "minitofu":
        cols = [
            ("forget_quality", "forget quality", ".3g"),
            ("utility_ratio", "MU / target", ".3f"),
            ("forget_rouge", "forget ROUGE-L", ".3f"),
            ("privleak", "privleak", ".3g"),
        ]
    else:
        cols = [
            ("forget_verbmem", "VerbMem forget", ".3f"),
            ("forget_knowmem", "KnowMem forget", ".3f"),
            ("utility_ratio", "KnowMem retain / target", ".3f"),
            ("privleak", "PrivLeak", ".3g"),
        ]
    head = ["arm", *(c[1] for c in cols), "final L_r / ε", "s / run", "admissible in tuning"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m = r["metrics"]
        ratio = _cell(m["retain_over_epsilon"], ".2f") if r["constrained"] else "— (fixed weight)"
        cells = [
            r["arm"],
            *(_cell(m[key], fmt) for key, _, fmt in cols),
            ratio,
            f"{_num(m['seconds']['median']):.0f}",
            "yes" if r["admissible"] else "no",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pareto_plot(rows: list[dict[str, Any]], benchmark: str, path: Path) -> Path:
    """Median forget score against median utility ratio per arm, with bootstrap error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_key = "forget_quality" if benchmark == "minitofu" else "privleak"
    floor = 1e-4 if benchmark == "minitofu" else -math.inf  # FQ below it: drawn on the edge
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = plt.get_cmap("tab20").colors
    for i, r in enumerate(rows):
        x, y = r["metrics"]["utility_ratio"], r["metrics"][y_key]
        xm, ym = _num(x["median"]), _num(y["median"])
        if math.isnan(xm) or math.isnan(ym):
            continue
        marker = "o" if r["constrained"] else "s"
        label = r["arm"]
        lo, hi = _num(y["lo"]), _num(y["hi"])
        if ym < floor:  # off the axis: a down-pointing marker on the floor, the value in the label
            label, marker, ym, lo, hi = f"{label} (FQ {ym:.2g}, off axis)", "v", floor, floor, floor
        xerr = [[max(xm - _num(x["lo"]), 0)], [max(_num(x["hi"]) - xm, 0)]]
        yerr = [[max(ym - max(lo, floor), 0)], [max(hi - ym, 0)]]
        ax.errorbar(
            xm, ym, xerr=xerr, yerr=yerr, fmt=marker, capsize=3, label=label,
            color=colors[i % len(colors)],
        )  # fmt: skip
    ax.axvline(0.9, color="grey", ls="--", lw=1)
    if benchmark == "minitofu":
        ax.set_yscale("log")
        ax.set_ylim(floor / 2, 1.5)
        ax.axhline(0.05, color="grey", ls=":", lw=1)
        ax.set_ylabel("forget quality (KS p-value; higher = closer to retain model)")
        ax.set_xlabel("model utility / target's")
    else:
        ax.axhline(0.0, color="grey", ls=":", lw=1)
        ax.set_ylabel("PrivLeak (0 = retrained model)")
        ax.set_xlabel("retain KnowMem / target's")
    ax.set_title(f"efficacy protocol on {benchmark}: median over seeds, bootstrap 95 % bars")
    ax.legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--benchmark", default="minitofu", choices=["minitofu", "minimuse"])
    parser.add_argument("--size", default="default", help="build preset (tiny, default)")
    parser.add_argument("--trials", type=int, default=3, help="tuning trials per arm (≥ 1)")
    # (--quick caps it at 2)
    parser.add_argument("--tune-seed", type=int, default=0)
    parser.add_argument(
        "--eval-seeds", type=int, nargs="+", default=[1, 2, 3], help="evaluation build seeds"
    )
    parser.add_argument(
        "--unlearn-seeds",
        type=int,
        nargs="+",
        default=None,
        help="unlearning seeds run on every evaluation build (default: the build's own seed)",
    )
    parser.add_argument(
        "--methods", nargs="*", default=None, help="registered method names (default: all)"
    )
    parser.add_argument("--solvers", nargs="*", default=None, help="PDU's solvers (default all)")
    parser.add_argument(
        "--arms", nargs="*", default=None, help="only these arm ids (e.g. pdu--gda npo--penalty)"
    )
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default="benchmarks/efficacy/results/minitofu")
    parser.add_argument("--tracking-uri", default=None, help="default sqlite:///<out>/mlflow.db")
    parser.add_argument("--aggregate", action="store_true", help="only aggregate arm files")
    parser.add_argument(
        "--phase",
        default="all",
        choices=["all", "tune"],
        help="tune: only the tuning trials (<out>/tune/); all: tune where missing, then seeds",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny preset, PDU (gda) and GradDiff only, 2 trials, eval seeds 1 2: the test",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size = "tiny"
        args.trials = min(args.trials, 2)
        args.eval_seeds = [1, 2]
        args.methods = args.methods or ["pdu", "grad-diff"]
        args.solvers = args.solvers or ["gda"]
    if args.trials < 1:
        parser.error(f"--trials must be ≥ 1, got {args.trials}")
    for flag, seeds in (("--eval-seeds", args.eval_seeds), ("--unlearn-seeds", args.unlearn_seeds)):
        if seeds is not None and args.tune_seed in seeds:
            parser.error(
                f"--tune-seed {args.tune_seed} is also in {flag} {seeds}: the evaluation "
                "seeds must not have been used for tuning; pick others"
            )
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the protocol and aggregate; returns the summary."""
    args = _parse(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    (out / "arms").mkdir(parents=True, exist_ok=True)
    tracking_uri = args.tracking_uri or f"sqlite:///{(out / 'mlflow.db').resolve()}"
    meta = {
        **run_meta("benchmarks/efficacy/protocol.py", argv),
        "size": args.size,
        "trials_per_arm": args.trials,
        "tune_seed": args.tune_seed,
        "eval_seeds": args.eval_seeds,
        "unlearn_seeds": args.unlearn_seeds or "= build seed",
        "selection_rule": SELECTION_RULES[args.benchmark],
    }
    if args.aggregate:
        return aggregate(out, args.benchmark, meta)
    arms = arms_from_registry(args.methods, args.solvers)
    if args.arms:
        unknown = sorted(set(args.arms) - {a.slug for a in arms})
        if unknown:
            raise SystemExit(f"--arms {unknown} unknown; the arms are {[a.slug for a in arms]}")
        by_slug = {a.slug: a for a in arms}
        arms = [by_slug[slug] for slug in dict.fromkeys(args.arms)]  # in the order given
    (out / "tune").mkdir(parents=True, exist_ok=True)
    tune_bench: Benchmark | None = None
    eval_benches: list[Benchmark] | None = None
    for arm in arms:
        path = out / "arms" / f"{arm.slug}.json"
        tune_path = out / "tune" / f"{arm.slug}.json"
        if path.exists():
            print(f"[skip] {arm.label}: {path} exists", flush=True)
            continue
        if tune_path.exists():
            tuned = json.loads(tune_path.read_text())
        else:
            if tune_bench is None:
                tune_bench = prepare(args.benchmark, args.size, args.tune_seed, args.cache_dir)
            started = time.perf_counter()
            trials = tune_arm(
                tune_bench, arm, trials=args.trials, out=out, tracking_uri=tracking_uri
            )
            index, ok = select(trials, args.benchmark)
            tuned = {
                "arm": arm.label,
                "slug": arm.slug,
                "method": arm.method,
                "solver": arm.solver,
                "constrained": arm.constrained,
                "space": [p.__dict__ for p in search_space(arm, args.benchmark)],
                "selected": {"trial": index, "params": trials[index]["params"]},
                "admissible": ok,
                "trials": trials,
                "tune_seconds": time.perf_counter() - started,
                "meta": meta,
            }
            tune_path.write_text(json.dumps(_json_safe(tuned), indent=2) + "\n")
        if args.phase == "tune":
            continue
        if eval_benches is None:
            eval_benches = [
                prepare(args.benchmark, args.size, s, args.cache_dir) for s in args.eval_seeds
            ]
        evals = evaluate_arm(
            eval_benches,
            arm,
            tuned["selected"]["params"],
            out=out,
            tracking_uri=tracking_uri,
            unlearn_seeds=args.unlearn_seeds,
        )
        record = {**tuned, "eval": evals, "meta": meta}
        path.write_text(json.dumps(_json_safe(record), indent=2) + "\n")
    summary = aggregate(out, args.benchmark, meta)
    print((out / "table.md").read_text())
    return summary


if __name__ == "__main__":
    main()
