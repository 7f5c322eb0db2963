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
* ``feasible`` — tag ``constraint_satisfied`` (``"true"``/``"false"``, the recipe's end-of-run
  check with its tolerance), else ``final/retain_loss ≤ final/retain_bound``, else
  ``retain_ok``. Infeasible runs are listed under the table, drawn hollow on the Pareto plot
  and never on its front.
* ``reference`` — tag ``reference`` (``"target"``, ``"retain"``) of a reference model's
  evaluation run (`log_reference_run`): first in
  the table, a reference point on the Pareto plot; only the newest per reference and model.
* ``multiplier`` — the last ``train/retain/multiplier`` (λ); ``steps`` — points of
  ``train/objective``.
* every ``eval/<name>`` metric becomes a column ``<name>``; the headline ones come first:
  ``forget_quality``, ``model_utility``, ``forget_rouge_l`` (``eval/forget_Q_A_ROUGE``, the TOFU
  ROUGE-L recall on the forget set, or an ``eval/forget_rougeL``-style key).

Step metrics follow [`MlflowCallback`][constrained_unlearn.tracking.MlflowCallback]: ``train/<flat key>``
with flat keys ``objective``, ``retain/value``, ``retain/violation``, ``retain/multiplier``,
``lr``, ``grad_norm`` and the terms' metrics (``forget_nll`` …).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from constrained_unlearn.tracking.plots import draw_all, pareto_front
from constrained_unlearn.tracking.preflight import DEFAULT_EXPERIMENT, resolve_tracking_uri

__all__ = [
    "DEFAULT_EXPERIMENT",
    "Comparison",
    "HISTORY_KEYS",
    "RunRecord",
    "build_table",
    "compare_runs",
    "latest_references",
    "load_runs",
    "markdown_table",
    "pareto_front",
]

logger = logging.getLogger(__name__)

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
    "feasible",
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
    def reference(self) -> str | None:
        """``"target"``/``"retain"`` for a reference model's evaluation run (tag
        ``reference``), else ``None``."""
        return self.tags.get("reference") or None

    def feasible(self) -> bool | None:
        """Whether the run ended inside its constraint: the tag ``constraint_satisfied``
        (``"true"``/``"false"``, set by the recipe with its tolerance), else ``final/retain_loss
        ≤ final/retain_bound``, else final retain loss ≤ ε; ``None`` when nothing says."""
        tag = self.tags.get("constraint_satisfied", "").strip().lower()
        if tag in ("true", "false"):
            return tag == "true"
        if "final/retain_loss" in self.metrics and "final/retain_bound" in self.metrics:
            return float(self.metrics["final/retain_loss"]) <= float(
                self.metrics["final/retain_bound"]
            )
        loss = self.metrics.get("final/retain_loss", self.metrics.get("train/retain/value"))
        eps = self.epsilon()
        if loss is None or not (math.isfinite(float(loss)) and math.isfinite(eps)):
            return None
        return float(loss) <= eps

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
            "feasible": None if self.reference else self.feasible(),
            "multiplier": float(self.metrics.get("train/retain/multiplier", math.nan)),
            "steps": len(self.history.get("train/objective", [])),
        }
        if self.reference:
            row["reference"] = self.reference
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

    uri = resolve_tracking_uri(tracking_uri)
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
    """The result of `compare_runs`.

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

    def describe(self) -> str:
        """``"wrote comparison.md, comparison.csv, pareto.png … to DIR"`` (what the CLI prints)."""
        if not self.files:
            return "nothing written"
        folder = next(iter(self.files.values())).parent
        names = ", ".join(path.name for path in self.files.values())
        text = f"{len(self.runs)} run(s) compared; wrote {names} to {folder.resolve()}"
        for name, reason in self.skipped.items():
            text += f"\n{name} plot not drawn: {reason}"
        return text


def latest_references(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """``runs`` with only the newest reference run per (reference, model); order kept."""
    newest: dict[tuple[str, str], RunRecord] = {}
    for run in runs:
        if run.reference:
            key = (run.reference, run.tags.get("model", ""))
            if key not in newest or run.start_time > newest[key].start_time:
                newest[key] = run
    keep = {id(run) for run in newest.values()}
    return [run for run in runs if not run.reference or id(run) in keep]


def build_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """The comparison table of ``runs``: reference models first, then by method, solver and
    start time."""
    ordered = sorted(
        runs,
        key=lambda r: (r.reference is None, r.reference or "", r.method, r.solver, r.start_time),
    )
    rows = [run.row() for run in ordered]
    extra = sorted({k for row in rows for k in row} - set(_FIXED) - set(_HEADLINE))
    columns = list(_FIXED[:5]) + list(_HEADLINE) + list(_FIXED[5:]) + extra
    table = pd.DataFrame(rows, columns=columns)
    return table


def compare_runs(
    experiment: str | Sequence[str] = DEFAULT_EXPERIMENT,
    filter_string: str | None = None,
    tracking_uri: str | None = None,
    out_dir: str | os.PathLike[str] = "outputs/compare",
    *,
    plots: bool = True,
    max_runs: int = 1000,
    title: str | None = None,
) -> Comparison:
    """Read runs from MLflow and write ``comparison.md``, ``comparison.csv`` and PNG plots.

    Plots (see `constrained_unlearn.tracking.plots`): ``pareto.png`` (forget quality, log
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
        A `Comparison` (``.table`` is a ``pandas.DataFrame``).

    Raises:
        ValueError: unknown experiment, or no run matched.
    """
    runs = latest_references(
        load_runs(
            experiment, filter_string=filter_string, tracking_uri=tracking_uri, max_runs=max_runs
        )
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
        "epsilon = retain bound ε; retain_ok = final retain loss ≤ ε; feasible = the run's "
        "constraint check (tag constraint_satisfied, else final retain loss ≤ its bound); "
        "multiplier = final λ.",
        "",
        markdown_table(table),
    ]
    infeasible = [
        str(name)
        for name, ok in zip(table["run_name"], table["feasible"], strict=True)
        if ok is not None and not isinstance(ok, float) and not bool(ok)
    ]
    if infeasible:
        lines += [
            f"**{len(infeasible)} run(s) end outside their constraint** (feasible = no): "
            + ", ".join(infeasible)
            + ". They are drawn hollow and left out of the Pareto front.",
            "",
        ]
    if plots:
        drawn, skipped = draw_all(runs, table, out)
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
    logger.debug("%s", result.describe())  # the CLI prints it
    return result
