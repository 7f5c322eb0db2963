"""One run's training curves as a PNG: the forget objective, each constraint against its bound,
and each multiplier, over optimiser steps. Logged as an artifact of the run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from constrained_unlearn.engine.history import History


def plot_history(history: History, bounds: Mapping[str, float], path: str | Path) -> Path:
    """Write ``path`` (PNG) with three panels: L_f; c_i(θ_t) and ε_i; λ_i."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [r.step for r in history]
    fig = Figure(figsize=(7, 7.5), layout="constrained")  # no pyplot: no global state
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True)
    axes[0].plot(steps, [r.objective for r in history], color="tab:red")
    axes[0].set_ylabel("forget objective")
    for name, bound in bounds.items():
        line = axes[1].plot(steps, [r.values[name] for r in history], label=f"{name}")[0]
        axes[1].axhline(bound, color=line.get_color(), linestyle="--", label=f"ε ({name})")
        axes[2].plot(steps, [r.multipliers.get(name, float("nan")) for r in history], label=name)
    axes[1].set_ylabel("constraint value")
    axes[1].legend(fontsize=8)
    axes[2].set_ylabel("multiplier λ")
    axes[2].set_xlabel("optimiser step")
    for ax in axes:
        ax.grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
