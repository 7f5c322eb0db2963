"""Every PNG the library draws (matplotlib's object API: no pyplot, no global backend).

Comparison plots (inputs: the table and the runs of `constrained_unlearn.tracking.compare`):

* `plot_pareto` — forget quality (log scale) against model utility, one point per run,
  one colour and one legend entry per ``method/solver``; infeasible runs (final constraint
  value above its bound) drawn hollow and left out of the Pareto front (both coordinates
  maximised, `pareto_front`), which is a dashed line through circled points; the target
  and retain models (reference runs) drawn as black stars/crosses with their names.
* `plot_dual` — for primal-dual runs: λ over steps (top) and the retain loss over steps
  with its bound ε dashed (bottom, log scale: an ε of 0.03 under a loss of 2 stays readable).
* `plot_forget_curves` — forget NLL over steps (left; rises as the answers are forgotten)
  and the method's own objective (right; units differ between methods).

One run's training curves: `plot_history` (objective; each constraint and its ε on a log
scale; each multiplier), logged by the recipe as ``plots/training.png``.

This module imports nothing from the rest of ``tracking``: a run is anything with the
attributes of `RunLike`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from constrained_unlearn.engine.history import History

__all__ = [
    "REFERENCE_MARKERS",
    "RunLike",
    "draw_all",
    "dual_figure",
    "history_figure",
    "pareto_figure",
    "pareto_front",
    "plot_dual",
    "plot_forget_curves",
    "plot_history",
    "plot_pareto",
]

REFERENCE_MARKERS = {"target": "*", "retain": "X"}
"""Markers of the reference models on the Pareto plot (others get ``P``)."""


class RunLike(Protocol):
    """What the comparison plots read from a run."""

    run_id: str
    run_name: str
    history: dict[str, list[tuple[int, float]]]

    @property
    def label(self) -> str: ...

    @property
    def is_primal_dual(self) -> bool: ...

    def epsilon(self) -> float: ...


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points that no other point dominates, both coordinates maximised.

    ``q`` dominates ``p`` when ``q ≥ p`` in both coordinates and ``q > p`` in one. Points with
    a NaN coordinate are never on the front. Returned in increasing order of the first
    coordinate.
    """
    valid = [
        i for i, (x, y) in enumerate(points) if not (math.isnan(float(x)) or math.isnan(float(y)))
    ]
    front = []
    for i in valid:
        x, y = points[i]
        dominated = any(
            points[j][0] >= x and points[j][1] >= y and (points[j][0] > x or points[j][1] > y)
            for j in valid
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def _figure(width: float, height: float, rows: int = 1, cols: int = 1, **kwargs: Any):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, **kwargs)
    return fig, axes


def _colors(keys: Sequence[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(set(keys)) <= 10 else "tab20"]
    size = 10 if len(set(keys)) <= 10 else 20
    return {key: cmap(i % size) for i, key in enumerate(dict.fromkeys(keys))}


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _log_scale_if_positive(ax: Axes, values: Sequence[float]) -> bool:
    """Log y when every value is > 0 (the bound and the loss may differ by orders)."""
    finite = [v for v in values if _finite(v)]
    if finite and min(finite) > 0:
        ax.set_yscale("log")
        return True
    return False


def _mark_bound(ax: Axes, bound: float, color: Any, text: str) -> None:
    """A dashed ε line with its value written at the right end, above the line."""
    ax.axhline(bound, color=color, linestyle="--", linewidth=1.1)
    ax.annotate(
        text,
        xy=(1.0, bound),
        xycoords=("axes fraction", "data"),
        xytext=(-4, 3),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=7,
        color=color,
    )


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    fig.savefig(out, dpi=120)
    return out


def _infeasible(value: object) -> bool:
    """``False`` (Python or numpy), ``"false"`` or ``"no"``: a run known to be infeasible."""
    return not isinstance(value, float) and str(value).lower() in ("false", "no")


def plot_pareto(table: pd.DataFrame, path: str | Path) -> Path | None:
    """Write `pareto_figure` to ``path``; ``None`` (nothing written) when it has no point."""
    fig = pareto_figure(table)
    return None if fig is None else _save(fig, path)


def pareto_figure(table: pd.DataFrame) -> Figure | None:
    """Forget quality (log y) vs model utility; ``None`` when no run has both (FQ > 0).

    Reads the columns ``method``, ``solver``, ``forget_quality``, ``model_utility`` and, when
    present, ``feasible`` (``False`` → hollow, not on the front) and ``reference``
    (``"target"``/``"retain"`` → a black reference marker, not on the front).
    """
    rows = [
        row
        for _, row in table.iterrows()
        if _finite(row.get("forget_quality"))
        and _finite(row.get("model_utility"))
        and row["forget_quality"] > 0
    ]
    if not rows:
        return None
    fig, axes = _figure(6.8, 4.8)
    ax = axes[0][0]
    references = [r for r in rows if isinstance(r.get("reference"), str) and r.get("reference")]
    runs = [r for r in rows if not (isinstance(r.get("reference"), str) and r.get("reference"))]

    def label(row: Any) -> str:
        method, solver = str(row["method"] or ""), str(row["solver"] or "")
        return f"{method}/{solver}" if solver else method or str(row.get("run_name", "?"))

    colors = _colors([label(r) for r in runs])
    labeled: set[str] = set()
    any_infeasible = False
    for row in runs:
        name = label(row)
        hollow = _infeasible(row.get("feasible"))
        any_infeasible |= hollow
        ax.scatter(
            row["model_utility"],
            row["forget_quality"],
            s=52,
            zorder=3,
            marker="o",
            facecolors="none" if hollow else colors[name],
            edgecolors=colors[name],
            linewidths=1.6,
            label=name if name not in labeled else None,
        )
        labeled.add(name)
    for row in references:
        name = str(row["reference"])
        x, y = float(row["model_utility"]), float(row["forget_quality"])
        ax.scatter(
            x, y, s=120, marker=REFERENCE_MARKERS.get(name, "P"), color="black", zorder=5,
            label=f"{name} model",
        )  # fmt: skip
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    candidates = [r for r in runs if not _infeasible(r.get("feasible"))]
    points = [(float(r["model_utility"]), float(r["forget_quality"])) for r in candidates]
    front = pareto_front(points)
    if front:
        xs = [points[i][0] for i in front]
        ys = [points[i][1] for i in front]
        ax.plot(
            xs, ys, color="black", linewidth=1.0, linestyle="--", zorder=2, label="Pareto front"
        )
        ax.scatter(xs, ys, s=170, facecolors="none", edgecolors="black", linewidths=1.0, zorder=4)
    if any_infeasible:
        ax.scatter([], [], s=52, facecolors="none", edgecolors="grey", label="hollow: infeasible")
    ax.set_yscale("log")
    ax.set_xlabel("model utility (higher is better)")
    ax.set_ylabel("forget quality, log scale (higher is better)")
    ax.set_title("Forget quality vs model utility")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_dual(runs: Sequence[RunLike], path: str | Path) -> Path | None:
    """Write `dual_figure` to ``path``; ``None`` (nothing written) without primal-dual runs."""
    fig = dual_figure(runs)
    return None if fig is None else _save(fig, path)


def dual_figure(runs: Sequence[RunLike]) -> Figure | None:
    """λ and retain loss vs ε over steps for the primal-dual runs; ``None`` if there are none."""
    runs = [r for r in runs if r.is_primal_dual]
    if not runs:
        return None
    fig, axes = _figure(6.8, 6.0, rows=2, cols=1, sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    colors = _colors([r.run_id for r in runs])
    lambdas: list[float] = []
    retained: list[float] = []
    for run in runs:
        color = colors[run.run_id]
        steps, lam = zip(*run.history["train/retain/multiplier"], strict=True)
        top.plot(steps, lam, color=color, label=f"{run.label} ({run.run_name})")
        lambdas.extend(lam)
        retain = run.history.get("train/retain/value")
        if retain:
            rs, rv = zip(*retain, strict=True)
            bottom.plot(rs, rv, color=color)
            retained.extend(rv)
        eps = run.epsilon()
        if math.isfinite(eps):
            _mark_bound(bottom, eps, color, f"ε = {eps:.3g}")
            retained.append(eps)
    finite_lambdas = [v for v in lambdas if _finite(v)]
    if (
        finite_lambdas
        and min(finite_lambdas) > 0
        and max(finite_lambdas) > 30 * min(finite_lambdas)
    ):
        top.set_yscale("log")
    log = _log_scale_if_positive(bottom, retained)
    top.set_ylabel("multiplier λ")
    top.set_title("Dual variable and retain constraint (dashed: ε)")
    top.legend(fontsize=7, loc="best")
    top.grid(True, alpha=0.3)
    bottom.set_ylabel("retain loss" + (" (log scale)" if log else ""))
    bottom.set_xlabel("optimiser step")
    bottom.grid(True, which="both" if log else "major", alpha=0.3)
    return fig


def plot_forget_curves(runs: Sequence[RunLike], path: str | Path) -> Path | None:
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
    colors = _colors([r.run_id for r in runs])
    for run in runs:
        color = colors[run.run_id]
        label = f"{run.label} ({run.run_name})"
        nll = run.history.get("train/forget_nll")
        if nll and left is not None:
            steps, values = zip(*nll, strict=True)
            left.plot(steps, values, color=color, label=label)
        objective = run.history.get("train/objective")
        if objective:
            steps, values = zip(*objective, strict=True)
            right.plot(steps, values, color=color, label=label)
    if left is not None:
        left.set_title("Forget NLL (answer tokens)")
        left.set_xlabel("optimiser step")
        left.set_ylabel("NLL")
        left.grid(True, alpha=0.3)
    right.set_title("Forget objective (method-specific units)")
    right.set_xlabel("optimiser step")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7, loc="best")
    return _save(fig, path)


def plot_history(history: History, bounds: Mapping[str, float], path: str | Path) -> Path:
    """Write `history_figure` to ``path`` (PNG)."""
    return _save(history_figure(history, bounds), path)


def history_figure(history: History, bounds: Mapping[str, float]) -> Figure:
    """Three panels over optimiser steps: the forget objective L_f; each constraint c_i(θ_t)
    with its bound ε_i dashed and written out (log scale when all are > 0); each λ_i."""
    steps = [r.step for r in history]
    fig, axes = _figure(7.0, 7.5, rows=3, cols=1, sharex=True)
    objective, constraint, multiplier = axes[0][0], axes[1][0], axes[2][0]
    objective.plot(steps, [r.objective for r in history], color="tab:red")
    objective.set_ylabel("forget objective")
    colors = _colors(list(bounds))
    shown: list[float] = []
    for name, bound in bounds.items():
        values = [r.values[name] for r in history]
        constraint.plot(steps, values, color=colors[name], label=name)
        _mark_bound(constraint, bound, colors[name], f"ε ({name}) = {bound:.3g}")
        shown += [*values, bound]
        multiplier.plot(
            steps,
            [r.multipliers.get(name, float("nan")) for r in history],
            color=colors[name],
            label=name,
        )
    log = _log_scale_if_positive(constraint, shown)
    constraint.set_ylabel("constraint value" + (" (log)" if log else ""))
    constraint.legend(fontsize=8)
    multiplier.set_ylabel("multiplier λ")
    multiplier.set_xlabel("optimiser step")
    for ax in (objective, constraint, multiplier):
        ax.grid(True, which="both" if ax is constraint and log else "major", alpha=0.3)
    return fig


def draw_all(
    runs: Sequence[RunLike], table: pd.DataFrame, out_dir: str | Path
) -> tuple[dict[str, Path], dict[str, str]]:
    """Draw every comparison plot into ``out_dir``; returns ``(drawn {name: path}, skipped
    {name: why})``."""
    out = Path(out_dir)
    drawn: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    jobs: tuple[tuple[str, Callable[[], Path | None], str], ...] = (
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
