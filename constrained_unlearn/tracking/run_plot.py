"""Kept for callers of ``constrained_unlearn.tracking.run_plot.plot_history``: the function
lives in `constrained_unlearn.tracking.plots`, the one plotting module."""

from constrained_unlearn.tracking.plots import plot_history

__all__ = ["plot_history"]
