"""Compare unlearning runs recorded in MLflow: one table (Markdown + CSV) and a few plots.

What is read, per run (through ``MlflowClient``; nothing is written back):

* ``method`` — param ``method.name`` (else tag ``method``); ``solver`` — param
  ``method.solver`` (else tag ``solver``, param ``solver``).
* ``epsilon`` — the retain bound ε: param ``problem.bound.retain``, else metric
  ``final/retain_bound``, else param ``method.epsilon``, else derived from the last step as
  ``train/retain/value − train/retain/violation`` (the engine logs both, so ε is always known
  for a run that logged steps).
* ``retain_loss`` — metric ``final/retain_loss`` (retain NLL after training) if logged, else the
  last ``train/retain/value``; ``retain_ok`` — ``retain_loss ≤ ε``.
* ``multiplier`` — the last ``train/retain/multiplier`` (λ); ``steps`` — points of
  ``train/objective``.
* every ``eval/<name>`` metric becomes a column ``<name>``; the headline ones come first:
  ``forget_quality``, ``model_utility``, ``forget_rouge_l`` (``eval/forget_Q_A_ROUGE``, the TOFU
  ROUGE-L recall on the forget set, or an ``eval/forget_rougeL``-style key).

Step metrics follow :class:`~constrained_unlearn.tracking.MlflowCallback`: ``train/<flat key>``
with flat keys ``objective``, ``retain/value``, ``retain/violation``, ``retain/multiplier``,
``lr``, ``grad_norm`` and the terms' metrics (``forget_nll`` …).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "Comparison",
    "HISTORY_KEYS",
    "RunRecord",
    "compare_runs",
    "load_runs",
    "markdown_table",
    "pareto_front",
]

HISTORY_KEYS = (
    "train/objective",
    "train/forget_nll",
    "train/retain/value",
    "train/retain/multiplier",
)
"""Step metrics whose full history is read (for the curves)."""

_HEADLINE = {
    "forget_quality": ("eval/forget_quality",),
    "model_utility": ("eval/model_utility",),
    "forget_rouge_l": (
        "eval/forget_Q_A_ROUGE",
        "eval/forget_rougeL",
        "eval/forget_rouge_l",
        "eval/forget_rougeL_recall",
    ),
}
_FIXED = (
    "run_name",
    "run_id",
    "status",
    "method",
    "solver",
    "epsilon",
    "retain_loss",
    "retain_ok",
    "multiplier",
    "steps",
)
_PRIMAL_DUAL_EXCLUDED = {"penalty", ""}


@dataclass
class RunRecord:
    """One run as read from MLflow."""

    run_id: str
    run_name: str
    status: str
    start_time: int
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.params.get("method.name") or self.tags.get("method") or ""

    @property
    def solver(self) -> str:
        return (
            self.params.get("method.solver")
            or self.tags.get("solver")
            or self.params.get("solver")
            or ""
        )

    @property
    def label(self) -> str:
        """``method/solver`` (or the run name when neither was logged)."""
        parts = [p for p in (self.method, self.solver) if p]
        return "/".join(parts) if parts else self.run_name

    @property
    def is_primal_dual(self) -> bool:
        """A solver that moves λ (anything but ``penalty``) and a logged λ history."""
        return self.solver.lower() not in _PRIMAL_DUAL_EXCLUDED and bool(
            self.history.get("train/retain/multiplier")
        )

    def epsilon(self) -> float:
        value = _as_float(self.params.get("problem.bound.retain"))
        if value is not None:
            return value
        if "final/retain_bound" in self.metrics:
            return float(self.metrics["final/retain_bound"])
        value = _as_float(self.params.get("method.epsilon"))
        if value is not None:
            return value
        if "train/retain/value" in self.metrics and "train/retain/violation" in self.metrics:
            return float(
                self.metrics["train/retain/value"] - self.metrics["train/retain/violation"]
            )
        return math.nan

    def row(self) -> dict[str, Any]:
        """The table row of this run."""
        eps = self.epsilon()
        retain = self.metrics.get("final/retain_loss", self.metrics.get("train/retain/value"))
        retain = math.nan if retain is None else float(retain)
        ok: bool | None = None
        if math.isfinite(eps) and math.isfinite(retain):
            ok = retain <= eps
        row: dict[str, Any] = {
            "run_name": self.run_name,
            "run_id": self.run_id,
            "status": self.status,
            "method": self.method,
            "solver": self.solver,
            "epsilon": eps,
            "retain_loss": retain,
            "retain_ok": ok,
            "multiplier": float(self.metrics.get("train/retain/multiplier", math.nan)),
            "steps": len(self.history.get("train/objective", [])),
        }
        used = set()
        for column, keys in _HEADLINE.items():
            row[column] = math.nan
            for key in keys:
                if key in self.metrics:
                    row[column] = float(self.metrics[key])
                    used.add(key)
                    break
        for key in sorted(self.metrics):
            if key.startswith("eval/") and key not in used:
                row[key[len("eval/") :]] = float(self.metrics[key])
        return row


def _as_float(value: str | None) -> float | None:
    if value is None or value in ("", "None", "null"):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _client(tracking_uri: str | None) -> tuple[Any, str]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    from constrained_unlearn.tracking.mlflow_run import DEFAULT_TRACKING_URI

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    return MlflowClient(tracking_uri=uri), uri


def load_runs(
    experiment: str | Sequence[str],
    *,
    filter_string: str | None = None,
    tracking_uri: str | None = None,
    history_keys: Sequence[str] = HISTORY_KEYS,
    max_runs: int = 1000,
) -> list[RunRecord]:
    """Read the runs of one or more experiments (by name), oldest first.

    Args:
        experiment: experiment name(s).
        filter_string: an MLflow search filter, e.g. ``"params.`method.name` = 'npo'"`` or
            ``"attributes.status = 'FINISHED'"``.
        tracking_uri: default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
        history_keys: step metrics whose whole history is fetched (one request per key and
            run; keys a run did not log cost nothing but the request).
        max_runs: stop after this many runs.

    Raises:
        ValueError: an experiment does not exist (the message lists those that do).
    """
    from mlflow.entities import ViewType

    client, uri = _client(tracking_uri)
    names = [experiment] if isinstance(experiment, str) else list(experiment)
    ids = []
    for name in names:
        found = client.get_experiment_by_name(name)
        if found is None:
            known = sorted(e.name for e in client.search_experiments(view_type=ViewType.ALL))
            raise ValueError(f"experiment {name!r} not found at {uri}; experiments there: {known}")
        ids.append(found.experiment_id)
    runs: list[Any] = []
    token = None
    while len(runs) < max_runs:
        page = client.search_runs(
            ids,
            filter_string=filter_string or "",
            max_results=min(1000, max_runs - len(runs)),
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    records = []
    for run in runs:
        metrics = dict(run.data.metrics)
        history = {}
        for key in history_keys:
            if key in metrics:
                points = client.get_metric_history(run.info.run_id, key)
                history[key] = sorted((int(m.step), float(m.value)) for m in points)
        records.append(
            RunRecord(
                run_id=run.info.run_id,
                run_name=run.info.run_name or run.info.run_id[:8],
                status=run.info.status,
                start_time=int(run.info.start_time or 0),
                params=dict(run.data.params),
                tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
                metrics=metrics,
                history=history,
            )
        )
    return records


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


def _format(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column == "run_id":
        return str(value)[:8]
    if isinstance(value, float):
        if column == "forget_quality" or (value != 0 and abs(value) < 1e-3):
            return f"{value:.3g}" if abs(value) >= 1e-3 else f"{value:.2e}"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (numbers to 4 significant digits, run ids to 8)."""
    columns = list(table.columns)
    lines = [
        "| " + " | ".join(columns) + " |",
        "|"
        + "|".join("---" if c in ("run_name", "method", "solver") else "--:" for c in columns)
        + "|",
    ]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_format(row[c], c) for c in columns) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class Comparison:
    """The result of :func:`compare_runs`.

    Attributes:
        table: one row per run (columns described in the module docstring).
        runs: the runs as read, histories included.
        files: ``{"markdown", "csv", "pareto", "dual", "forget_curves"}`` → written path
            (a plot is missing when no run had the data for it; see ``skipped``).
        skipped: ``{plot: reason}`` for the plots that were not drawn.
    """

    table: pd.DataFrame
    runs: list[RunRecord]
    files: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_markdown(self) -> str:
        return markdown_table(self.table)


def build_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """The comparison table of ``runs``, sorted by method, solver and start time."""
    ordered = sorted(runs, key=lambda r: (r.method, r.solver, r.start_time))
    rows = [run.row() for run in ordered]
    extra = sorted({k for row in rows for k in row} - set(_FIXED) - set(_HEADLINE))
    columns = list(_FIXED[:5]) + list(_HEADLINE) + list(_FIXED[5:]) + extra
    table = pd.DataFrame(rows, columns=columns)
    return table


def compare_runs(
    experiment: str | Sequence[str],
    filter_string: str | None = None,
    tracking_uri: str | None = None,
    out_dir: str | os.PathLike[str] = "outputs/compare",
    *,
    plots: bool = True,
    max_runs: int = 1000,
    title: str | None = None,
) -> Comparison:
    """Read runs from MLflow and write ``comparison.md``, ``comparison.csv`` and PNG plots.

    Plots (see :mod:`constrained_unlearn.tracking.plots`): ``pareto.png`` (forget quality, log
    scale, vs model utility, Pareto front marked), ``dual.png`` (λ and retain loss vs ε over
    steps, primal-dual runs only) and ``forget_curves.png`` (forget NLL over steps).

    Args:
        experiment: experiment name(s).
        filter_string: MLflow search filter (e.g. ``"attributes.status = 'FINISHED'"``).
        tracking_uri: where the runs are (default ``$MLFLOW_TRACKING_URI`` or
            ``sqlite:///mlflow.db``).
        out_dir: output folder (created).
        plots: also draw the PNG plots.
        max_runs: read at most this many runs.
        title: heading of the Markdown file (default: the experiment names).

    Returns:
        A :class:`Comparison` (``.table`` is a ``pandas.DataFrame``).

    Raises:
        ValueError: unknown experiment, or no run matched.
    """
    runs = load_runs(
        experiment, filter_string=filter_string, tracking_uri=tracking_uri, max_runs=max_runs
    )
    names = [experiment] if isinstance(experiment, str) else list(experiment)
    if not runs:
        where = f" matching {filter_string!r}" if filter_string else ""
        raise ValueError(f"no run in experiment(s) {names}{where}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = build_table(runs)
    result = Comparison(table=table, runs=runs)

    csv_path = out / "comparison.csv"
    table.to_csv(csv_path, index=False)
    result.files["csv"] = csv_path
    heading = title or ", ".join(names)
    lines = [f"# Run comparison: {heading}", ""]
    lines.append(f"{len(runs)} run(s)" + (f", filter `{filter_string}`" if filter_string else ""))
    lines += [
        "",
        "epsilon = retain bound ε; retain_ok = final retain loss ≤ ε; multiplier = final λ.",
        "",
        markdown_table(table),
    ]
    if plots:
        from constrained_unlearn.tracking import plots as plotting

        drawn, skipped = plotting.draw_all(runs, table, out)
        result.files.update(drawn)
        result.skipped.update(skipped)
        for name, path in drawn.items():
            lines.append(f"![{name}]({path.name})")
        for name, reason in skipped.items():
            lines.append(f"- {name}: not drawn ({reason})")
        lines.append("")
    md_path = out / "comparison.md"
    md_path.write_text("\n".join(lines))
    result.files["markdown"] = md_path
    return result
