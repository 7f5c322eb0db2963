"""MUSE evaluator: VerbMem, KnowMem, PrivLeak (+ open-unlearning's extras) (spec §4).

Data is ``{"config/split": rows}`` (or nested ``{config: {split: rows}}``) with MUSE's names:

    verbmem/forget                      prompt, gt            VerbMem, extraction strength
    knowmem/forget_qa, forget_qa_icl    question, answer      forget KnowMem (+ its shots)
    knowmem/retain_qa, retain_qa_icl    question, answer      retain KnowMem (+ its shots)
    privleak/forget, privleak/holdout   text                  Min-K% AUC → PrivLeak

Metrics (open-unlearning names):

=========================  ===============================================================
``forget_verbmem_ROUGE``   mean ROUGE-L F1 of the greedy 128-token continuation of each
                           prompt against ``gt`` (muse-original: ``gt`` cut to 128 tokens,
                           no stemming)
``forget_knowmem_ROUGE``   mean ROUGE-L F1 of the greedy 32-token few-shot answer (cut at
                           "\\n\\n", "\\nQuestion", "Question:") against the gold answer
``retain_knowmem_ROUGE``   the same on the retain QA (utility preservation)
``mia_min_k``              Min-K% (k = 0.4) AUC over the whole text of each privleak document,
                           forget vs holdout; ``agg_value``/``auc`` in open-unlearning
                           orientation (→ 1 when memorised), ``auc_muse`` = 1 − auc
``privleak``               (AUC^MUSE_unl − AUC^MUSE_ret) / AUC^MUSE_ret × 100, the retrained
                           model's AUC from its log (``retrain_logs=``) or given explicitly
                           (``retrain_auc=``, e.g. ``"news"`` → 0.4772, MUSE orientation)
``extraction_strength``    ES of ``gt`` teacher-forced after ``prompt`` (open-unlearning joins
                           them with a space)
=========================  ===============================================================

Optional: ``exact_memorization``, ``mia_loss``, ``mia_zlib``, ``mia_min_k_plus_plus``,
``mia_gradnorm``, ``mia_reference`` (needs ``reference_model``).

Conventions: ``"open-unlearning"`` (stemming, whole reference, MIA texts cut to 2048 tokens,
scores in [0, 1]) and ``"muse-original"`` (no stemming, reference cut to 128 tokens, whole MIA
texts, the ROUGE ``agg_value``s ×100 — per-example values stay in [0, 1] and the metric records
``score_scale``). PrivLeak is a percentage under both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from constrained_unlearn.evaluation import provenance as prov
from constrained_unlearn.evaluation.base import (
    Evaluator,
    MetricSpec,
    MissingSplitError,
    method_call,
)
from constrained_unlearn.evaluation.metrics import (
    KNOWMEM_STOP_STRINGS,
    MUSE_RETRAIN_MIN_K_AUC,
    Convention,
    build_knowmem_prompt,
    cut_knowmem_answer,
    knowmem_scores,
    muse_privleak,
    verbmem_scores,
)
from constrained_unlearn.evaluation.report import (
    ReferenceLog,
    by_index,
    load_reference_log,
    nanmean,
    with_bootstrap,
)
from constrained_unlearn.evaluation.scoring import (
    ScoredSequence,
    encode_text,
    per_example_gradnorm,
    score_sequences,
)
from constrained_unlearn.llm.generation import generate_batched
from constrained_unlearn.llm.tokenization import check_tokenization

__all__ = [
    "ALL_MUSE_METRICS",
    "DEFAULT_MUSE_METRICS",
    "MUSE_METRICS",
    "MuseEvaluator",
    "write_retrain_log",
]

DEFAULT_MUSE_METRICS: tuple[str, ...] = (
    "forget_verbmem_ROUGE",
    "forget_knowmem_ROUGE",
    "retain_knowmem_ROUGE",
    "privleak",
    "extraction_strength",
)
MUSE_MIA_METRICS: tuple[str, ...] = (
    "mia_min_k",
    "mia_min_k_plus_plus",
    "mia_loss",
    "mia_zlib",
    "mia_gradnorm",
    "mia_reference",
)
ALL_MUSE_METRICS: tuple[str, ...] = (
    *DEFAULT_MUSE_METRICS,
    "exact_memorization",
    *MUSE_MIA_METRICS,
)

_PRIVLEAK_SPLITS = ("privleak/forget", "privleak/holdout")


def _table() -> dict[str, MetricSpec]:
    """The MUSE metric table (see `base`), in `ALL_MUSE_METRICS` order."""
    table: dict[str, MetricSpec] = {
        "forget_verbmem_ROUGE": MetricSpec(
            lambda ev, r: ev.verbmem(), data=("verbmem/forget",), generations=("verbmem",)
        ),
        "forget_knowmem_ROUGE": MetricSpec(
            lambda ev, r: ev.knowmem("forget"),
            data=("knowmem/forget_qa", "knowmem/forget_qa_icl"),
            generations=("knowmem/forget",),
        ),
        "retain_knowmem_ROUGE": MetricSpec(
            lambda ev, r: ev.knowmem("retain"),
            data=("knowmem/retain_qa", "knowmem/retain_qa_icl"),
            generations=("knowmem/retain",),
        ),
        "privleak": MetricSpec(
            lambda ev, r: ev.privleak_metric(r), data=_PRIVLEAK_SPLITS, depends=("mia_min_k",)
        ),
        "extraction_strength": MetricSpec(
            lambda ev, r: ev.memorization_metric("es"), data=("verbmem/forget",)
        ),
        "exact_memorization": MetricSpec(
            lambda ev, r: ev.memorization_metric("em"), data=("verbmem/forget",)
        ),
    }
    for attack in MUSE_MIA_METRICS:
        table[attack] = MetricSpec(method_call("mia_metric", attack), data=_PRIVLEAK_SPLITS)
    table["mia_reference"] = replace(
        table["mia_reference"],
        requires=(("reference_model", "reference_model= (the retrained model)"),),
    )
    assert set(table) == set(ALL_MUSE_METRICS)
    return {m: table[m] for m in ALL_MUSE_METRICS}


MUSE_METRICS: dict[str, MetricSpec] = _table()
"""``{metric: MetricSpec}``: what each MUSE metric computes, reads and depends on."""

_ALL_SPLITS: tuple[str, ...] = tuple(
    dict.fromkeys(s for spec in MUSE_METRICS.values() for s in spec.data)
)


def _lookup(data: Mapping[str, Any], key: str) -> Any:
    """``data["config/split"]`` or ``data["config"]["split"]``; ``None`` when absent."""
    if key in data:
        return data[key]
    config, split = key.split("/")
    inner = data.get(config)
    if isinstance(inner, Mapping) and split in inner:
        return inner[split]
    return None


def _rows(data: Mapping[str, Any], key: str) -> list[dict[str, Any]] | None:
    rows = _lookup(data, key)
    return None if rows is None else [dict(r) for r in rows]


class MuseEvaluator(Evaluator):
    """Evaluate one causal LM on MUSE (see the module docstring).

    Args:
        model: a Hugging Face causal LM (left as it was found).
        tokenizer: its tokenizer, with a pad token.
        data: MUSE splits keyed ``"config/split"`` (or nested); only those the requested
            metrics read are required.
        convention: ``"open-unlearning"`` (default) or ``"muse-original"``.
        tokenization: how a VerbMem prompt and its continuation are tokenised for extraction
            strength: ``"joint"`` (one string, the prompt's length masked: open-unlearning's,
            the default) or ``"separate"``. ``None``: the convention's.
        batch_size: prompts per generation batch and sequences per teacher-forced pass (8,
            as MUSE; MUSE documents are long).
        verbmem_max_new_tokens: VerbMem continuation budget (128).
        knowmem_max_new_tokens: KnowMem answer budget (32).
        retrain_logs: the retrained model's ``MUSE_EVAL.json`` (path, folder or dict) whose
            ``mia_min_k.agg_value`` PrivLeak compares against.
        retrain_auc: instead of a log, the retrained model's Min-K% AUC as a number, or
            ``"news"`` / ``"books"`` for original MUSE's constants (0.4772 / 0.5393).
        retrain_auc_orientation: orientation of a numeric ``retrain_auc``:
            ``"muse-original"`` (→ 0 when memorised; the constants) or ``"open-unlearning"``.
        compat: ``"open-unlearning"`` accepts a retrain log without provenance (warning).
        allow_self_reference: accept a retrain log made by the evaluated weights themselves
            (refused by default; a warning when accepted).
        reference_model: second model for ``mia_reference``.
        metrics: metrics to compute (default `DEFAULT_MUSE_METRICS`).
        model_id: the model's name in the report.
        seed: bootstrap seed (recorded).
        progress: progress bars over the metrics and the generation batches (only when
            stderr is a terminal).

    Raises:
        MissingSplitError: when a split a requested metric reads is absent.
        ValueError: on an unknown metric/convention or contradictory PrivLeak references.
    """

    name = "MUSE"
    METRICS = MUSE_METRICS
    DEFAULT_METRICS = DEFAULT_MUSE_METRICS

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        data: Mapping[str, Any],
        *,
        convention: Convention | str = Convention.OPEN_UNLEARNING,
        tokenization: str | None = None,
        batch_size: int = 8,
        verbmem_max_new_tokens: int = 128,
        knowmem_max_new_tokens: int = 32,
        retrain_logs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        retrain_auc: float | str | None = None,
        retrain_auc_orientation: str = "muse-original",
        compat: str | None = None,
        allow_self_reference: bool = False,
        reference_model: Any = None,
        metrics: Sequence[str] | None = None,
        model_id: str | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        self.settings = prov.evaluator_settings(
            "MUSE", convention, compat=compat, batch_size=batch_size
        )
        if tokenization is not None:
            self.settings = replace(self.settings, tokenization=check_tokenization(tokenization))
        self.convention = Convention(self.settings.convention)
        if retrain_logs is not None and retrain_auc is not None:
            raise ValueError("pass retrain_logs= or retrain_auc=, not both")
        if retrain_auc_orientation not in ("muse-original", "open-unlearning"):
            raise ValueError(
                f"retrain_auc_orientation={retrain_auc_orientation!r}; use 'muse-original' "
                "or 'open-unlearning'"
            )
        self.retrain_auc_ou = self._retrain_auc_ou(retrain_auc, retrain_auc_orientation)
        self.reference_model = reference_model
        self.metrics = self.select_metrics(metrics)
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.verbmem_max_new_tokens = verbmem_max_new_tokens
        self.knowmem_max_new_tokens = knowmem_max_new_tokens
        self.compat = compat
        self.allow_self_reference = allow_self_reference
        self.model_id = model_id
        self.seed = seed
        self.progress = progress
        self.mia_k = 0.4
        self._retrain_source = retrain_logs
        self._retrain_log: ReferenceLog | None = None
        self.plan = self.expand(self.metrics)

        needed = self.data_needs(self.plan)
        missing = {s: m for s, m in needed.items() if _lookup(data, s) is None}
        if missing:
            split, metric = next(iter(missing.items()))
            raise MissingSplitError(
                f"data has no split {split!r}, needed by {metric!r} (missing: {sorted(missing)}); "
                f"available: {sorted(data)}. Load the MUSE configs (verbmem, knowmem, privleak) "
                "or leave the metric out of metrics="
            )
        self.load_rows(data, needed, _ALL_SPLITS, _rows)
        self.memo: dict[Any, Any] = {}

    @staticmethod
    def _retrain_auc_ou(value: float | str | None, orientation: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, str):
            key = value.lower()
            if key not in MUSE_RETRAIN_MIN_K_AUC:
                raise ValueError(
                    f"retrain_auc={value!r}; use a number or one of {sorted(MUSE_RETRAIN_MIN_K_AUC)}"
                )
            return 1.0 - MUSE_RETRAIN_MIN_K_AUC[key]
        auc = float(value)
        if not 0.0 <= auc <= 1.0:
            raise ValueError(f"retrain_auc={auc} is not an AUC in [0, 1]")
        return 1.0 - auc if orientation == "muse-original" else auc

    # ------------------------------------------------------------------ provenance
    def _retrain_log_loaded(self) -> ReferenceLog | None:
        if self._retrain_log is None and self._retrain_source is not None:
            self._retrain_log = load_reference_log(self._retrain_source, name=self.name)
        return self._retrain_log

    def build_provenance(self) -> dict[str, Any]:
        """This run's provenance (see `provenance`)."""
        configs = {s: prov.data_fingerprint(r) for s, r in sorted(self.rows.items())}
        reference: dict[str, Any] = {}
        log = self._retrain_log_loaded()
        if log is not None:
            reference["retrain_log_sha256"] = prov.sha256_json([log.mia_min_k_auc])
        if self.retrain_auc_ou is not None:
            reference["retrain_auc"] = self.retrain_auc_ou
        if self.reference_model is not None:
            reference["reference_model_sha256"] = prov.weights_hash(self.reference_model)
        fields = {
            "template": {"kind": "raw text / few-shot Question-Answer"},
            "data": {
                "forget_split": "privleak/forget",
                "holdout_split": "privleak/holdout",
                "question_key": None,
                "max_questions": None,
                "configs": configs,
                "rows": {s: len(r) for s, r in sorted(self.rows.items())},
                "forget_data_sha256": configs.get("privleak/forget"),
                "holdout_data_sha256": configs.get("privleak/holdout"),
            },
            "generation": {
                "do_sample": False,
                "verbmem_max_new_tokens": self.verbmem_max_new_tokens,
                "knowmem_max_new_tokens": self.knowmem_max_new_tokens,
                "knowmem_stop_strings": list(KNOWMEM_STOP_STRINGS),
                "batch_size": self.batch_size,
                "post_processing": "cut at first EOS and stop strings, stripped",
            },
            "scoring": {
                "batch_size": self.batch_size,
                "max_length": None,
                "mia_k": self.mia_k,
                "mia_max_tokens": self.settings.mia_max_tokens,
                "verbmem_insert_space": self._insert_space,
                "tokenization": self.settings.tokenization,
            },
            "reference": reference,
        }
        return prov.evaluator_provenance(self, fields)

    @property
    def _insert_space(self) -> bool:
        return self.convention is Convention.OPEN_UNLEARNING

    # ------------------------------------------------------------------ intermediates
    def generation_group(self, key: str) -> str:
        return key.split("/")[0]

    def generate_sets(self, group: str, keys: Sequence[str]) -> dict[str, list[str]]:
        """VerbMem continuations, or the KnowMem answers of both sides in one call."""
        if group == "verbmem":
            prompts = [str(r["prompt"]) for r in self.rows["verbmem/forget"]]
            return {"verbmem": self._gen(prompts, self.verbmem_max_new_tokens, ())}
        flat: list[str] = []
        spans = {}
        for key in keys:
            p, _ = self._knowmem_prompts(key.split("/")[1])
            spans[key] = (len(flat), len(flat) + len(p))
            flat.extend(p)
        texts = self._gen(flat, self.knowmem_max_new_tokens, KNOWMEM_STOP_STRINGS)
        return {key: texts[lo:hi] for key, (lo, hi) in spans.items()}

    def _gen(self, prompts: list[str], max_new_tokens: int, stop: Sequence[str]) -> list[str]:
        texts = generate_batched(
            self.model,
            self.tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=self.batch_size,
            stop_strings=stop,
            add_special_tokens=True,
            progress=self.progress,
        )
        return [t.strip() for t in texts]

    def _knowmem_prompts(self, side: str) -> tuple[list[str], list[str]]:
        icl = [(str(r["question"]), str(r["answer"])) for r in self.rows[f"knowmem/{side}_qa_icl"]]
        rows = self.rows[f"knowmem/{side}_qa"]
        prompts = [build_knowmem_prompt(str(r["question"]), icl) for r in rows]
        return prompts, [str(r["answer"]) for r in rows]

    def _verbmem_sequences(self) -> list[ScoredSequence]:
        key = ("verbmem_sequences",)
        if key not in self.memo:
            self.memo[key] = [
                encode_text(
                    self.tokenizer,
                    str(r["gt"]),
                    prefix=str(r["prompt"]),
                    insert_space=self._insert_space,
                    max_target_tokens=self.settings.mia_max_tokens,
                    tokenization=self.settings.tokenization,  # type: ignore[arg-type]
                )
                for r in self.rows["verbmem/forget"]
            ]
        return self.memo[key]

    def _privleak_sequences(self, side: str) -> list[ScoredSequence]:
        key = ("privleak_sequences", side)
        if key not in self.memo:
            self.memo[key] = [
                encode_text(
                    self.tokenizer, str(r["text"]), max_target_tokens=self.settings.mia_max_tokens
                )
                for r in self.rows[f"privleak/{side}"]
            ]
        return self.memo[key]

    def _stats(self, what: str, model: Any = None) -> Any:
        key = ("stats", what, model is not None)
        if key not in self.memo:
            sequences = (
                self._verbmem_sequences() if what == "verbmem" else self._privleak_sequences(what)
            )
            self.memo[key] = score_sequences(
                model if model is not None else self.model,
                sequences,
                batch_size=self.batch_size,
                pad_token_id=self._pad_id,
            )
        return self.memo[key]

    @property
    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    # ------------------------------------------------------------------ metrics
    def _scaled(self, metric: dict[str, Any]) -> dict[str, Any]:
        scale = self.settings.score_scale
        if scale != 1.0:
            metric["agg_value"] = metric["agg_value"] * scale
            if "bootstrap_ci" in metric:
                metric["bootstrap_ci"]["low"] *= scale
                metric["bootstrap_ci"]["high"] *= scale
        metric["score_scale"] = scale
        return metric

    def verbmem(self) -> dict[str, Any]:
        """``forget_verbmem_ROUGE``: ROUGE-L F1 of the greedy continuations."""
        rows = self.rows["verbmem/forget"]
        prompts = [str(r["prompt"]) for r in rows]
        refs = [str(r["gt"]) for r in rows]
        gens = self.generations("verbmem")
        f1 = verbmem_scores(gens, refs, convention=self.convention, tokenizer=self.tokenizer)
        items = [
            {"rougeL_f1": float(f), "input": p, "ground_truth": r, "generation": g}
            for f, p, r, g in zip(f1, prompts, refs, gens)
        ]
        metric = {"agg_value": nanmean(f1), "value_by_index": by_index(items)}
        return self._scaled(with_bootstrap(metric, f1, seed=self.seed))

    def knowmem(self, side: str) -> dict[str, Any]:
        """``<side>_knowmem_ROUGE``: ROUGE-L F1 of the few-shot answers."""
        prompts, answers = self._knowmem_prompts(side)
        gens = self.generations(f"knowmem/{side}")
        f1 = knowmem_scores(gens, answers, convention=self.convention)
        items = [
            {
                "rougeL_f1": float(f),
                "input": p,
                "ground_truth": a,
                "generation": cut_knowmem_answer(g),
            }
            for f, p, a, g in zip(f1, prompts, answers, gens)
        ]
        metric = {"agg_value": nanmean(f1), "value_by_index": by_index(items)}
        return self._scaled(with_bootstrap(metric, f1, seed=self.seed))

    def memorization_stats(self) -> Any:
        return self._stats("verbmem")

    def mia_inputs(self, side: str) -> tuple[Any, Any]:
        def texts() -> list[str]:
            return [str(r["text"]) for r in self.rows[f"privleak/{side}"]]

        return self._stats(side), texts

    def mia_reference_nll(self, side: str) -> Any:
        return self._stats(side, self.reference_model).mean_nll()

    def mia_gradnorm(self, side: str) -> Any:
        return per_example_gradnorm(
            self.model,
            self._privleak_sequences(side),
            batch_size=self.batch_size,
            pad_token_id=self._pad_id,
        )

    def mia_metric(self, attack: str) -> dict[str, Any]:
        out = super().mia_metric(attack)
        out["auc_muse"] = 1.0 - out["auc"]
        return out

    def privleak_metric(self, results: Mapping[str, Any]) -> dict[str, Any]:
        """PrivLeak against the retrained model's Min-K% AUC."""
        auc = float(results["mia_min_k"]["agg_value"])
        retrain = self._retrain_reference()
        assert retrain is not None
        return {
            "agg_value": muse_privleak(auc, auc_retrain=retrain, orientation="open-unlearning"),
            "auc": auc,
            "retrain_auc": retrain,
            "orientation": "open-unlearning",
        }

    def _retrain_reference(self) -> float | None:
        if self.retrain_auc_ou is not None:
            return self.retrain_auc_ou
        log = self._retrain_log_loaded()
        return None if log is None else log.mia_min_k_auc

    def check_references(self, plan: Sequence[str]) -> None:
        if "privleak" not in plan:
            return
        if self.retrain_auc_ou is not None:
            return
        log = self._retrain_log_loaded()
        if log is None:
            raise ValueError(
                "privleak needs the retrained model's Min-K% AUC: pass retrain_logs= (its "
                "MUSE_EVAL.json), retrain_auc= (a number, or 'news'/'books' for the original "
                "MUSE constants), or evaluate(skip_privleak=True)"
            )
        prov.check_not_self_reference(
            self.provenance(),
            log.provenance,
            source=log.source,
            allow=self.allow_self_reference,
            option="allow_self_reference=True",
        )
        prov.check_reference_log(
            self.provenance(),
            log.provenance,
            metric="privleak",
            compat=self.compat,
            source=log.source,
        )
        if log.mia_min_k_auc is None:
            raise ValueError(f"{log.source} has no mia_min_k.agg_value; privleak needs it")

    def evaluate(
        self,
        output_dir: str | os.PathLike[str] | None = None,
        *,
        skip_privleak: bool = False,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Compute the requested metrics; write ``MUSE_EVAL.json`` / ``MUSE_SUMMARY.json``.

        Args:
            output_dir: run folder (``None``: write nothing); reuse rules as
                `run_metrics`.
            skip_privleak: leave privleak out (no retrained-model reference needed).
            overwrite: recompute even when a matching report exists.

        Returns:
            ``{metric: {...}, ..., "provenance": {...}}``.

        Raises:
            ValueError: privleak without a retrained-model reference, or with a log made by
                the evaluated weights themselves.
            ProvenanceMismatchError: a retrain log made under other settings.
        """
        top_level = [m for m in self.metrics if not (skip_privleak and m == "privleak")]
        return self.run(top_level, output_dir, overwrite=overwrite)


def write_retrain_log(
    retrain_model: Any,
    tokenizer: Any,
    data: Mapping[str, Any],
    output_dir: str | os.PathLike[str],
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate the retrained model and save ``<output_dir>/MUSE_EVAL.json`` (with its Min-K%
    AUC and provenance) for the PrivLeak of other models. ``kwargs``: any
    [`MuseEvaluator`][constrained_unlearn.evaluation.MuseEvaluator] keyword except ``retrain_logs`` / ``retrain_auc``."""
    if "retrain_logs" in kwargs or "retrain_auc" in kwargs:
        raise ValueError("write_retrain_log makes the reference; do not pass retrain_logs/auc")
    metrics = list(kwargs.pop("metrics", None) or DEFAULT_MUSE_METRICS)
    if "mia_min_k" not in metrics:
        metrics.append("mia_min_k")
    evaluator = MuseEvaluator(retrain_model, tokenizer, data, metrics=metrics, **kwargs)
    return evaluator.evaluate(output_dir, skip_privleak=True)
