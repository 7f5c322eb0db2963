"""PNG plots of a run comparison (matplotlib's object API: no pyplot, no global backend).

* :func:`plot_pareto` — forget quality (log scale) against model utility, one point per run,
  the Pareto front (both maximised, :func:`~constrained_unlearn.tracking.compare.pareto_front`)
  drawn as a line through circled points.
* :func:`plot_dual` — for primal-dual runs: λ over steps (top) and the retain loss over steps
  with its bound ε dashed (bottom).
* :func:`plot_forget_curves` — forget NLL over steps (left; rises as the answers are
  forgotten) and the method's own objective (right; units differ between methods).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from constrained_unlearn.tracking.compare import RunRecord

__all__ = ["draw_all", "plot_dual", "plot_forget_curves", "plot_pareto"]

_MARKERS = {"penalty": "o", "gda": "s", "alternating-gda": "D", "extragradient": "^"}
_OTHER_MARKERS = ("v", "P", "X", "*", "h")


def _figure(width: float, height: float, rows: int = 1, cols: int = 1, **kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, **kwargs)
    return fig, axes


def _colours(keys: Sequence[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {key: cmap(i % 10) for i, key in enumerate(dict.fromkeys(keys))}


def _marker(solver: str, seen: dict[str, str]) -> str:
    if solver in _MARKERS:
        return _MARKERS[solver]
    if solver not in seen:
        seen[solver] = _OTHER_MARKERS[len(seen) % len(_OTHER_MARKERS)]
    return seen[solver]


def plot_pareto(table: pd.DataFrame, path: str | Path) -> Path | None:
    """Forget quality (log y) vs model utility; ``None`` when no run has both (FQ > 0).

    Colour = method, marker = solver; every point is labelled ``method/solver``.
    """
    from constrained_unlearn.tracking.compare import pareto_front

    rows = [
        row
        for _, row in table.iterrows()
        if _finite(row.get("forget_quality"))
        and _finite(row.get("model_utility"))
        and row["forget_quality"] > 0
    ]
    if not rows:
        return None
    fig, axes = _figure(6.4, 4.6)
    ax = axes[0][0]
    colours = _colours([str(r["method"]) for r in rows])
    extra: dict[str, str] = {}
    labelled: set[str] = set()
    for row in rows:
        method, solver = str(row["method"]), str(row["solver"])
        label = method if method not in labelled else None
        labelled.add(method)
        ax.scatter(
            row["model_utility"],
            row["forget_quality"],
            color=colours[method],
            marker=_marker(solver, extra),
            s=46,
            zorder=3,
            label=label,
        )
        ax.annotate(
            f"{method}/{solver}" if solver else method,
            (row["model_utility"], row["forget_quality"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=7,
        )
    points = [(float(r["model_utility"]), float(r["forget_quality"])) for r in rows]
    front = pareto_front(points)
    xs = [points[i][0] for i in front]
    ys = [points[i][1] for i in front]
    ax.plot(xs, ys, color="black", linewidth=1.0, linestyle="--", zorder=2, label="Pareto front")
    ax.scatter(xs, ys, s=150, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4)
    ax.set_yscale("log")
    ax.set_xlabel("model utility (higher is better)")
    ax.set_ylabel("forget quality, log scale (higher is better)")
    ax.set_title("Forget quality vs model utility")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def plot_dual(runs: Sequence[RunRecord], path: str | Path) -> Path | None:
    """λ and retain loss vs ε over steps for the primal-dual runs; ``None`` if there are none."""
    runs = [r for r in runs if r.is_primal_dual]
    if not runs:
        return None
    fig, axes = _figure(6.4, 5.6, rows=2, cols=1, sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    colours = _colours([r.run_id for r in runs])
    for run in runs:
        colour = colours[run.run_id]
        label = f"{run.label} ({run.run_name})"
        steps, lam = zip(*run.history["train/retain/multiplier"])
        top.plot(steps, lam, color=colour, label=label)
        retain = run.history.get("train/retain/value")
        if retain:
            rs, rv = zip(*retain)
            bottom.plot(rs, rv, color=colour)
        eps = run.epsilon()
        if math.isfinite(eps):
            bottom.axhline(eps, color=colour, linestyle="--", linewidth=1.0)
    top.set_ylabel("multiplier λ")
    top.set_title("Dual variable and retain constraint (dashed: ε)")
    top.legend(fontsize=7, loc="best")
    top.grid(True, alpha=0.3)
    bottom.set_ylabel("retain loss")
    bottom.set_xlabel("optimiser step")
    bottom.grid(True, alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def plot_forget_curves(runs: Sequence[RunRecord], path: str | Path) -> Path | None:
    """Forget NLL (left) and objective (right) over steps; ``None`` if no run logged steps.

    The forget-NLL panel is left out when no run logged ``train/forget_nll``.
    """
    runs = [
        r for r in runs if r.history.get("train/objective") or r.history.get("train/forget_nll")
    ]
    if not runs:
        return None
    with_nll = any(r.history.get("train/forget_nll") for r in runs)
    fig, axes = _figure(10.0 if with_nll else 6.0, 4.0, rows=1, cols=2 if with_nll else 1)
    left, right = (axes[0][0], axes[0][1]) if with_nll else (None, axes[0][0])
    colours = _colours([r.run_id for r in runs])
    for run in runs:
        colour = colours[run.run_id]
        label = f"{run.label} ({run.run_name})"
        nll = run.history.get("train/forget_nll")
        if nll and left is not None:
            steps, values = zip(*nll)
            left.plot(steps, values, color=colour, label=label)
        objective = run.history.get("train/objective")
        if objective:
            steps, values = zip(*objective)
            right.plot(steps, values, color=colour, label=label)
    if left is not None:
        left.set_title("Forget NLL (answer tokens)")
        left.set_xlabel("optimiser step")
        left.set_ylabel("NLL")
        left.grid(True, alpha=0.3)
    right.set_title("Forget objective (method-specific units)")
    right.set_xlabel("optimiser step")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7, loc="best")
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def draw_all(
    runs: Sequence[RunRecord], table: pd.DataFrame, out_dir: str | Path
) -> tuple[dict[str, Path], dict[str, str]]:
    """Draw every plot into ``out_dir``; returns ``(drawn {name: path}, skipped {name: why})``."""
    out = Path(out_dir)
    drawn: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    jobs = (
        (
            "pareto",
            lambda: plot_pareto(table, out / "pareto.png"),
            "no run logged both eval/forget_quality (> 0) and eval/model_utility",
        ),
        (
            "dual",
            lambda: plot_dual(runs, out / "dual.png"),
            "no primal-dual run (solver other than penalty) logged train/retain/multiplier",
        ),
        (
            "forget_curves",
            lambda: plot_forget_curves(runs, out / "forget_curves.png"),
            "no run logged train/objective or train/forget_nll",
        ),
    )
    for name, draw, reason in jobs:
        path = draw()
        if path is None:
            skipped[name] = reason
        else:
            drawn[name] = path
    return drawn, skipped


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
