"""The trade-off curve: sweep the retain bound ε of one constrained method.

    python benchmarks/eps_sweep.py --method pdu --solver gda --eps 0.01 0.02 0.03 0.05 0.08 \\
        --seeds 1 2 3 --set training.lr=1e-3 training.epochs=12 method.multiplier_init=20 \\
        method.dual_lr=100 --out benchmarks/efficacy/results/eps_sweep
    python benchmarks/eps_sweep.py --from-summary benchmarks/efficacy/results/minitofu/summary.json \\
        --arm "pdu (gda)" ...                 # the protocol's selected setting, ε swept

For every ε and every build seed (unlearning seed = build seed) the method unlearns mini-TOFU
forget10 through the library's recipe (one MLflow run each) and is evaluated. Writes
``sweep.json`` / ``sweep.csv`` (one row per run) and ``eps_sweep.png``: four panels against ε —
forget quality, model utility / target's, the final multiplier λ (the marginal price of
retention: how much forget loss one more nat of retain loss would buy) and the final retain
loss with the line ``L_r = ε`` (a point below the line is a run that kept its promise). Points
are medians over the seeds, bars span min to max.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "efficacy"))

if __name__ == "__main__":  # documented numbers: the pinned kernels (constrained_unlearn.numerics)
    from constrained_unlearn.numerics import pin_cpu_numerics

    pin_cpu_numerics()

from protocol import _json_safe, run_meta  # noqa: E402
from runner import prepare, run_trial  # noqa: E402
from spaces import Arm  # noqa: E402
from stats import median  # noqa: E402


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        try:
            value: Any = int(raw) if raw.lstrip("-").isdigit() else float(raw)
        except ValueError:
            value = raw
        out[key] = value
    return out


def sweep(
    arm: Arm,
    eps_values: Sequence[float],
    seeds: Sequence[int],
    base: dict[str, Any],
    *,
    size: str,
    out: Path,
    cache_dir: str | None = None,
    tracking_uri: str | None = None,
    on_record: Any = None,
) -> list[dict[str, Any]]:
    """One run per (seed, ε); returns the records (see :func:`runner.run_trial`).
    ``on_record(records)`` is called after every run (the script writes its files there, so
    an interrupted sweep keeps what finished)."""
    uri = tracking_uri or f"sqlite:///{(out / 'mlflow.db').resolve()}"
    records = []
    for seed in seeds:
        bench = prepare("minitofu", size, seed, cache_dir)
        for i, eps in enumerate(eps_values):
            params = {**base, "method.epsilon": float(eps)}
            record = run_trial(
                bench,
                arm,
                params,
                unlearn_seed=seed,
                output_dir=out / "runs",
                tracking_uri=uri,
                phase="eps",
                trial=i,
                experiment="efficacy-eps-sweep",
            )
            records.append(record)
            if on_record is not None:
                on_record(records)
            print(
                f"[ε={eps:g} b{seed}] FQ={record['forget_quality']:.3g} "
                f"MU/target={record['utility_ratio']:.3f} λ_end={record['lambda_end']:.3g} "
                f"L_r/ε={record['retain_over_epsilon']:.3f} {record['seconds']:.0f}s",
                flush=True,
            )
    return records


def plot(records: list[dict[str, Any]], path: Path, title: str) -> Path:
    """The four panels against ε (medians over seeds, min–max bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps_values = sorted({r["epsilon"] for r in records})
    panels = [
        ("forget_quality", "forget quality", True),
        ("utility_ratio", "model utility / target's", False),
        ("lambda_end", "final λ", True),
        ("final_retain_loss", "final retain loss", False),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, (key, label, log) in zip(axes, panels):
        med, lo, hi = [], [], []
        for eps in eps_values:
            vals = [float(r[key]) for r in records if r["epsilon"] == eps]
            vals = [v for v in vals if not math.isnan(v)]
            m = median(vals)
            med.append(m)
            lo.append(m - min(vals) if vals else 0.0)
            hi.append(max(vals) - m if vals else 0.0)
        ax.errorbar(eps_values, med, yerr=[lo, hi], fmt="o-", capsize=3)
        ax.set_xscale("log")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("ε")
        ax.set_ylabel(label)
        if key == "final_retain_loss":
            ax.plot(eps_values, eps_values, "k--", lw=1, label="L_r = ε")
            ax.legend()
        if key == "utility_ratio":
            ax.axhline(0.9, color="grey", ls="--", lw=1)
        if key == "forget_quality":
            ax.axhline(0.5, color="grey", ls="--", lw=1)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", default="pdu")
    parser.add_argument("--solver", default="gda")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.02, 0.03, 0.05, 0.08])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--size", default="default")
    parser.add_argument("--set", nargs="*", default=[], help="fixed settings, key=value")
    parser.add_argument("--from-summary", default=None, help="protocol summary.json")
    parser.add_argument("--arm", default=None, help="arm label in the summary, e.g. 'pdu (gda)'")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default="benchmarks/efficacy/results/eps_sweep")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    if any(not (e > 0 and math.isfinite(e)) for e in args.eps):
        parser.error(f"--eps values must be finite and > 0, got {args.eps}")
    import torch

    torch.set_num_threads(1)
    base: dict[str, Any] = {}
    if args.from_summary:
        summary = json.loads(Path(args.from_summary).read_text())
        label = args.arm or f"{args.method} ({args.solver})"
        found = [a for a in summary["arms"] if a["arm"] == label]
        if not found:
            parser.error(
                f"arm {label!r} not in {args.from_summary}; it has "
                f"{[a['arm'] for a in summary['arms']]}"
            )
        base = {k: v for k, v in found[0]["params"].items() if k != "method.epsilon"}
    base.update(_parse_sets(args.set))
    arm = Arm(args.method, args.solver)
    if not arm.constrained:
        parser.error("--solver penalty has no ε to sweep; pick a primal-dual solver (gda …)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        **run_meta("benchmarks/eps_sweep.py", argv),
        "arm": arm.label,
        "fixed": base,
    }

    def write(records: list[dict[str, Any]]) -> None:
        (out / "sweep.json").write_text(
            json.dumps(_json_safe({"meta": meta, "runs": records}), indent=2) + "\n"
        )
        keys = [k for k in records[0] if k != "params"]
        with open(out / "sweep.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(records)
        plot(records, out / "eps_sweep.png", f"{arm.label} on mini-TOFU {args.size}: ε sweep")

    records = sweep(
        arm,
        args.eps,
        args.seeds,
        base,
        size=args.size,
        out=out,
        cache_dir=args.cache_dir,
        tracking_uri=args.tracking_uri,
        on_record=write,
    )
    return records


if __name__ == "__main__":
    main()
