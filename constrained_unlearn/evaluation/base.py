"""One evaluator skeleton for TOFU and MUSE: a declarative metric table and the run around it.

An evaluator is a table ``{metric name: MetricSpec}``. A spec states, for one metric,

    compute       how to compute it: ``compute(evaluator, results) -> {"agg_value": …, …}``,
                  ``results`` holding every metric computed before it in the plan
    data          the data sets it reads (the evaluator's keys: TOFU ``"forget"``, ``"ra"`` …,
                  MUSE ``"verbmem/forget"`` …)
    generations   the greedy-generation sets it reads; all pending sets of one generation group
                  (same budget and stop strings) are generated in one batched call
    depends       metrics that must be computed first (their dicts are then in ``results``)
    requires      ``(attribute, hint)`` pairs: evaluator attributes that must not be ``None``

and everything else is derived from the table, once, here:

* the plan: the requested metrics with their dependencies first, each once
  (`Evaluator.expand`);
* the data that must be present (`Evaluator.data_needs`), checked at construction with
  an error naming the metric that needs a missing set;
* which generation sets to batch together (`Evaluator.generations`);
* the run: reuse of an earlier report with the same cache key, a report rewritten after every
  metric, a progress bar over the plan (`Evaluator.run`, over
  `run_metrics`).

A subclass (``tofu.TofuEvaluator``, ``muse.MuseEvaluator``) supplies only what differs: the
table, how a data key maps to a config name, its intermediates (teacher-forced scores, prompts),
how a generation group is generated, its provenance fields and its reference-log checks.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from constrained_unlearn.evaluation.attacks import memorization_result, mia_result, side_scores
from constrained_unlearn.evaluation.report import run_metrics

__all__ = ["Evaluator", "MetricSpec", "MissingSplitError", "method_call"]


class MissingSplitError(ValueError):
    """A data config (split) the requested metrics need is absent from ``data`` or empty."""


@dataclass(frozen=True)
class MetricSpec:
    """One row of an evaluator's metric table (see the module docstring).

    Attributes:
        compute: ``compute(evaluator, results)`` → the metric's dict.
        data: data keys it reads.
        generations: generation-set keys it reads.
        depends: metrics computed before it.
        requires: ``(attribute, hint)``: the evaluator attribute must be set, else
            ``ValueError(f"metric {name!r} needs {hint}")`` at construction.
    """

    compute: Callable[[Any, Mapping[str, Any]], dict[str, Any]]
    data: tuple[str, ...] = ()
    generations: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    requires: tuple[tuple[str, str], ...] = ()


def method_call(method: str, *args: Any) -> Callable[[Any, Mapping[str, Any]], dict[str, Any]]:
    """A table ``compute`` that calls ``evaluator.<method>(*args)`` (results unused)."""

    def compute(evaluator: Any, results: Mapping[str, Any]) -> dict[str, Any]:
        return getattr(evaluator, method)(*args)

    compute.__name__ = f"{method}{args!r}"
    return compute


def _stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


class Evaluator:
    """The shared skeleton (module docstring). Subclasses set `name`, `METRICS`,
    `DEFAULT_METRICS` and implement the hooks below."""

    name: ClassVar[str] = ""
    METRICS: ClassVar[Mapping[str, MetricSpec]] = {}
    DEFAULT_METRICS: ClassVar[tuple[str, ...]] = ()

    model: Any
    tokenizer: Any
    seed: int
    progress: bool
    mia_k: float
    metrics: list[str]
    rows: dict[str, list[dict[str, Any]]]

    # ------------------------------------------------------------------ the table
    @classmethod
    def expand(cls, metrics: Sequence[str]) -> list[str]:
        """Requested metrics with their dependencies first, each once, in a stable order."""
        out: list[str] = []

        def add(m: str) -> None:
            for dep in cls.METRICS[m].depends:
                add(dep)
            if m not in out:
                out.append(m)

        for m in metrics:
            add(m)
        return out

    @classmethod
    def data_needs(cls, plan: Sequence[str]) -> dict[str, str]:
        """``{data key: first metric of the plan that reads it}``."""
        need: dict[str, str] = {}
        for m in plan:
            for key in cls.METRICS[m].data:
                need.setdefault(key, m)
        return need

    def select_metrics(self, metrics: Sequence[str] | None) -> list[str]:
        """Validate the requested metrics (known, requirements met) and return them."""
        requested = list(metrics) if metrics is not None else list(self.DEFAULT_METRICS)
        unknown = [m for m in requested if m not in self.METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {list(self.METRICS)}")
        for m in requested:
            for attribute, hint in self.METRICS[m].requires:
                if getattr(self, attribute, None) is None:
                    raise ValueError(f"metric {m!r} needs {hint}")
        return requested

    # ------------------------------------------------------------------ data
    def load_rows(
        self,
        data: Mapping[str, Any],
        needed: Mapping[str, str],
        names: Sequence[str],
        lookup: Callable[[Mapping[str, Any], str], list[dict[str, Any]] | None],
    ) -> None:
        """``self.rows[name]`` for every name in ``names`` present in ``data``; an empty
        set that a metric needs is a `MissingSplitError`."""
        self.rows = {}
        for name in dict.fromkeys(names):
            rows = lookup(data, name)
            if rows is not None:
                self.rows[name] = rows
        for name, metric in needed.items():
            if not self.rows.get(name):
                raise MissingSplitError(f"data[{name!r}] is empty but {metric!r} needs its rows")

    # ------------------------------------------------------------------ generations
    def generation_group(self, key: str) -> str:
        """The group a generation set belongs to (sets of one group share a call)."""
        return ""

    def generate_sets(self, group: str, keys: Sequence[str]) -> dict[str, list[str]]:
        """Greedy outputs of the sets ``keys`` of ``group`` (hook)."""
        raise NotImplementedError

    def generations(self, key: str) -> list[str]:
        """Greedy outputs of one generation set, computed once per run.

        The first request also generates, in the same call, every other set of the same group
        that a metric of the plan still to compute reads (requested set first, then the
        table's order), so a run makes one generation call per group."""
        memo_key = ("generations", key)
        if memo_key not in self.memo:
            group = self.generation_group(key)
            pending = [key]
            for metric, spec in self.METRICS.items():
                if metric in self.plan and metric not in self.results_so_far:
                    pending.extend(spec.generations)
            todo = [
                k
                for k in dict.fromkeys(pending)
                if ("generations", k) not in self.memo and self.generation_group(k) == group
            ]
            for k, texts in self.generate_sets(group, todo).items():
                self.memo[("generations", k)] = texts
        return self.memo[memo_key]

    # ------------------------------------------------------------------ shared metrics
    def memorization_stats(self) -> Any:
        """Teacher-forced `TokenStats` that ES / EM read (hook)."""
        raise NotImplementedError

    def memorization_metric(self, kind: str) -> dict[str, Any]:
        correct = self.memorization_stats().drop_last().correct
        return memorization_result(
            correct, kind, es_ou_quirk=self.settings.es_ou_quirk, seed=self.seed
        )

    def mia_inputs(self, side: str) -> tuple[Any, Callable[[], list[str]]]:
        """``(TokenStats, texts())`` of one MIA side, ``"forget"`` or ``"holdout"`` (hook)."""
        raise NotImplementedError

    def mia_reference_nll(self, side: str) -> Any:
        """``[N]`` mean NLL of the side under the reference model (hook)."""
        raise NotImplementedError

    def mia_gradnorm(self, side: str) -> Any:
        """``[N]`` GradNorm scores of the side (hook)."""
        raise NotImplementedError

    def mia_metric(self, attack: str) -> dict[str, Any]:
        scores = {}
        for side in ("forget", "holdout"):
            stats, texts = self.mia_inputs(side)
            scores[side] = side_scores(
                attack,
                stats,
                self.mia_k,
                texts=texts,
                reference_nll=functools.partial(self.mia_reference_nll, side),
                gradnorm=functools.partial(self.mia_gradnorm, side),
            )
        return mia_result(scores)

    # ------------------------------------------------------------------ run
    settings: Any
    memo: dict[Any, Any]
    plan: list[str]
    results_so_far: Mapping[str, Any]
    cached_provenance: dict[str, Any] | None = None

    def build_provenance(self) -> dict[str, Any]:
        """This run's provenance, finalised (hook)."""
        raise NotImplementedError

    def provenance(self) -> dict[str, Any]:
        """This run's provenance (see `provenance`); computed once per run."""
        if self.cached_provenance is None:
            self.cached_provenance = self.build_provenance()
        return self.cached_provenance

    def check_references(self, plan: Sequence[str]) -> None:
        """Refuse a missing or mismatched reference log for the plan (hook)."""

    def compute(self, metric: str, results: Mapping[str, Any]) -> dict[str, Any]:
        """One metric of the table; ``results`` holds the metrics computed before it."""
        self.results_so_far = results
        return self.METRICS[metric].compute(self, results)

    def run(
        self,
        top_level: Sequence[str],
        output_dir: Any,
        *,
        overwrite: bool,
    ) -> dict[str, Any]:
        """Compute ``top_level`` (plus dependencies) and write the reports: see
        `run_metrics`."""
        plan = self.expand(top_level)
        self.plan = plan
        # The model may have changed since a previous call (in-loop evaluation): nothing
        # computed for it is reused from memory.
        self.memo = {}
        self.results_so_far = {}
        self.cached_provenance = None
        self.check_references(plan)
        provenance = self.provenance()
        bar = None
        if self.progress and _stderr_is_tty():
            from tqdm.auto import tqdm

            bar = tqdm(total=len(plan), desc=f"{self.name} metrics", unit="metric", leave=False)

        def compute(metric: str, results: dict[str, Any]) -> dict[str, Any]:
            if bar is not None:
                bar.set_postfix_str(metric, refresh=True)
            out = self.compute(metric, results)
            if bar is not None:
                bar.update(1)
            return out

        try:
            return run_metrics(
                plan,
                compute,
                name=self.name,
                provenance=provenance,
                top_level=list(top_level),
                output_dir=output_dir,
                overwrite=overwrite,
            )
        finally:
            if bar is not None:
                bar.close()
