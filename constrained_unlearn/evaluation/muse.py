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

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from constrained_unlearn.evaluation import provenance as prov
from constrained_unlearn.evaluation.attacks import memorisation_result, mia_result, side_scores
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
    run_metrics,
    with_bootstrap,
)
from constrained_unlearn.evaluation.scoring import (
    ScoredSequence,
    encode_text,
    per_example_gradnorm,
    score_sequences,
)
from constrained_unlearn.evaluation.tofu import MissingSplitError
from constrained_unlearn.llm.generation import generate_batched

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

_NEEDS: dict[str, tuple[str, ...]] = {
    "forget_verbmem_ROUGE": ("verbmem/forget",),
    "extraction_strength": ("verbmem/forget",),
    "exact_memorization": ("verbmem/forget",),
    "forget_knowmem_ROUGE": ("knowmem/forget_qa", "knowmem/forget_qa_icl"),
    "retain_knowmem_ROUGE": ("knowmem/retain_qa", "knowmem/retain_qa_icl"),
    "privleak": ("privleak/forget", "privleak/holdout"),
    **{m: ("privleak/forget", "privleak/holdout") for m in MUSE_MIA_METRICS},
}
_ALL_SPLITS: tuple[str, ...] = tuple(dict.fromkeys(s for v in _NEEDS.values() for s in v))


def _lookup(data: Mapping[str, Any], key: str) -> Any:
    """``data["config/split"]`` or ``data["config"]["split"]``; ``None`` when absent."""
    if key in data:
        return data[key]
    config, split = key.split("/")
    inner = data.get(config)
    if isinstance(inner, Mapping) and split in inner:
        return inner[split]
    return None


class MuseEvaluator:
    """Evaluate one causal LM on MUSE (see the module docstring).

    Args:
        model: a Hugging Face causal LM (left as it was found).
        tokenizer: its tokenizer, with a pad token.
        data: MUSE splits keyed ``"config/split"`` (or nested); only those the requested
            metrics read are required.
        convention: ``"open-unlearning"`` (default) or ``"muse-original"``.
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
        reference_model: second model for ``mia_reference``.
        metrics: metrics to compute (default :data:`DEFAULT_MUSE_METRICS`).
        model_id: the model's name in the report.
        seed: bootstrap seed (recorded).
        progress: progress bars during generation.

    Raises:
        MissingSplitError: when a split a requested metric reads is absent.
        ValueError: on an unknown metric/convention or contradictory PrivLeak references.
    """

    name = "MUSE"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        data: Mapping[str, Any],
        *,
        convention: Convention | str = Convention.OPEN_UNLEARNING,
        batch_size: int = 8,
        verbmem_max_new_tokens: int = 128,
        knowmem_max_new_tokens: int = 32,
        retrain_logs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        retrain_auc: float | str | None = None,
        retrain_auc_orientation: str = "muse-original",
        compat: str | None = None,
        reference_model: Any = None,
        metrics: Sequence[str] | None = None,
        model_id: str | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        self.settings = prov.evaluator_settings(
            "MUSE", convention, compat=compat, batch_size=batch_size
        )
        self.convention = Convention(self.settings.convention)
        if retrain_logs is not None and retrain_auc is not None:
            raise ValueError("pass retrain_logs= or retrain_auc=, not both")
        if retrain_auc_orientation not in ("muse-original", "open-unlearning"):
            raise ValueError(
                f"retrain_auc_orientation={retrain_auc_orientation!r}; use 'muse-original' "
                "or 'open-unlearning'"
            )
        self.retrain_auc_ou = self._retrain_auc_ou(retrain_auc, retrain_auc_orientation)
        requested = list(metrics) if metrics is not None else list(DEFAULT_MUSE_METRICS)
        unknown = [m for m in requested if m not in ALL_MUSE_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {list(ALL_MUSE_METRICS)}")
        if "mia_reference" in requested and reference_model is None:
            raise ValueError("metric 'mia_reference' needs reference_model= (the retrained model)")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.verbmem_max_new_tokens = verbmem_max_new_tokens
        self.knowmem_max_new_tokens = knowmem_max_new_tokens
        self.compat = compat
        self.reference_model = reference_model
        self.metrics = requested
        self.model_id = model_id
        self.seed = seed
        self.progress = progress
        self.mia_k = 0.4
        self._retrain_source = retrain_logs
        self._retrain_log: ReferenceLog | None = None

        needed: dict[str, str] = {}
        for m in self._plan(requested):
            for split in _NEEDS[m]:
                needed.setdefault(split, m)
        missing = {s: m for s, m in needed.items() if _lookup(data, s) is None}
        if missing:
            split, metric = next(iter(missing.items()))
            raise MissingSplitError(
                f"data has no split {split!r}, needed by {metric!r} (missing: {sorted(missing)}); "
                f"available: {sorted(data)}. Load the MUSE configs (verbmem, knowmem, privleak) "
                "or leave the metric out of metrics="
            )
        self.rows: dict[str, list[dict[str, Any]]] = {}
        for split in _ALL_SPLITS:
            rows = _lookup(data, split)
            if rows is not None:
                self.rows[split] = [dict(r) for r in rows]
        for split, metric in needed.items():
            if not self.rows[split]:
                raise MissingSplitError(f"data[{split!r}] is empty but {metric!r} needs its rows")
        self._memo: dict[Any, Any] = {}
        self._provenance: dict[str, Any] | None = None

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

    @staticmethod
    def _plan(metrics: Sequence[str]) -> list[str]:
        out: list[str] = []
        for m in metrics:
            if m == "privleak" and "mia_min_k" not in out:
                out.append("mia_min_k")
            if m not in out:
                out.append(m)
        return out

    # ------------------------------------------------------------------ provenance
    def _retrain_log_loaded(self) -> ReferenceLog | None:
        if self._retrain_log is None and self._retrain_source is not None:
            self._retrain_log = load_reference_log(self._retrain_source, name=self.name)
        return self._retrain_log

    def provenance(self) -> dict[str, Any]:
        """This run's provenance (see :mod:`.provenance`)."""
        if self._provenance is not None:
            return self._provenance
        configs = {s: prov.data_fingerprint(r) for s, r in sorted(self.rows.items())}
        reference: dict[str, Any] = {}
        log = self._retrain_log_loaded()
        if log is not None:
            reference["retrain_log_sha256"] = prov.sha256_json([log.mia_min_k_auc])
        if self.retrain_auc_ou is not None:
            reference["retrain_auc"] = self.retrain_auc_ou
        if self.reference_model is not None:
            reference["reference_model_sha256"] = prov.weights_hash(self.reference_model)
        out = {
            "evaluator": self.name,
            "evaluator_version": prov.EVALUATOR_VERSION,
            "library_version": prov.library_version(),
            "convention": self.convention.value,
            "convention_settings": self.settings.to_dict(),
            "model": prov.model_identity(self.model, model_id=self.model_id),
            "tokenizer": {
                "name_or_path": str(getattr(self.tokenizer, "name_or_path", "") or ""),
                "fingerprint": prov.tokenizer_fingerprint(self.tokenizer),
            },
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
            },
            "reference": reference,
            "seed": self.seed,
            "environment": prov.environment(),
        }
        self._provenance = prov.finalise(out)
        return self._provenance

    @property
    def _insert_space(self) -> bool:
        return self.convention is Convention.OPEN_UNLEARNING

    # ------------------------------------------------------------------ intermediates
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

    def _knowmem_generations(self, side: str) -> list[str]:
        key = ("knowmem", side)
        if key not in self._memo:
            sides = [
                s
                for s in ("forget", "retain")
                if f"{s}_knowmem_ROUGE" in self._active and ("knowmem", s) not in self._memo
            ]
            sides = list(dict.fromkeys([side, *sides]))
            prompts: list[str] = []
            spans = {}
            for s in sides:
                p, _ = self._knowmem_prompts(s)
                spans[s] = (len(prompts), len(prompts) + len(p))
                prompts.extend(p)
            texts = self._gen(prompts, self.knowmem_max_new_tokens, KNOWMEM_STOP_STRINGS)
            for s, (lo, hi) in spans.items():
                self._memo[("knowmem", s)] = texts[lo:hi]
        return self._memo[key]

    def _verbmem_sequences(self) -> list[ScoredSequence]:
        key = ("verbmem_sequences",)
        if key not in self._memo:
            self._memo[key] = [
                encode_text(
                    self.tokenizer,
                    str(r["gt"]),
                    prefix=str(r["prompt"]),
                    insert_space=self._insert_space,
                    max_target_tokens=self.settings.mia_max_tokens,
                )
                for r in self.rows["verbmem/forget"]
            ]
        return self._memo[key]

    def _privleak_sequences(self, side: str) -> list[ScoredSequence]:
        key = ("privleak_sequences", side)
        if key not in self._memo:
            self._memo[key] = [
                encode_text(
                    self.tokenizer, str(r["text"]), max_target_tokens=self.settings.mia_max_tokens
                )
                for r in self.rows[f"privleak/{side}"]
            ]
        return self._memo[key]

    def _stats(self, what: str, model: Any = None) -> Any:
        key = ("stats", what, model is not None)
        if key not in self._memo:
            sequences = (
                self._verbmem_sequences() if what == "verbmem" else self._privleak_sequences(what)
            )
            self._memo[key] = score_sequences(
                model if model is not None else self.model,
                sequences,
                batch_size=self.batch_size,
                pad_token_id=self._pad_id,
            )
        return self._memo[key]

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

    def _verbmem(self) -> dict[str, Any]:
        rows = self.rows["verbmem/forget"]
        prompts = [str(r["prompt"]) for r in rows]
        refs = [str(r["gt"]) for r in rows]
        gens = self._gen(prompts, self.verbmem_max_new_tokens, ())
        f1 = verbmem_scores(gens, refs, convention=self.convention, tokenizer=self.tokenizer)
        items = [
            {"rougeL_f1": float(f), "input": p, "ground_truth": r, "generation": g}
            for f, p, r, g in zip(f1, prompts, refs, gens)
        ]
        metric = {"agg_value": nanmean(f1), "value_by_index": by_index(items)}
        return self._scaled(with_bootstrap(metric, f1, seed=self.seed))

    def _knowmem(self, side: str) -> dict[str, Any]:
        prompts, answers = self._knowmem_prompts(side)
        gens = self._knowmem_generations(side)
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

    def _memorisation(self, kind: str) -> dict[str, Any]:
        correct = self._stats("verbmem").drop_last().correct
        return memorisation_result(
            correct, kind, es_ou_quirk=self.settings.es_ou_quirk, seed=self.seed
        )

    def _privleak_texts(self, side: str) -> list[str]:
        return [str(r["text"]) for r in self.rows[f"privleak/{side}"]]

    def _reference_mean_nll(self, side: str) -> Any:
        return self._stats(side, self.reference_model).mean_nll()

    def _privleak_gradnorm(self, side: str) -> Any:
        return per_example_gradnorm(
            self.model,
            self._privleak_sequences(side),
            batch_size=self.batch_size,
            pad_token_id=self._pad_id,
        )

    def _mia(self, attack: str) -> dict[str, Any]:
        scores = {
            side: side_scores(
                attack,
                self._stats(side),
                self.mia_k,
                texts=functools.partial(self._privleak_texts, side),
                reference_nll=functools.partial(self._reference_mean_nll, side),
                gradnorm=functools.partial(self._privleak_gradnorm, side),
            )
            for side in ("forget", "holdout")
        }
        out = mia_result(scores)
        out["auc_muse"] = 1.0 - out["auc"]
        return out

    def _privleak(self, results: Mapping[str, Any]) -> dict[str, Any]:
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

    def _check_retrain(self, plan: Sequence[str]) -> None:
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
        prov.check_reference_log(
            self.provenance(),
            log.provenance,
            metric="privleak",
            compat=self.compat,
            source=log.source,
        )
        if log.mia_min_k_auc is None:
            raise ValueError(f"{log.source} has no mia_min_k.agg_value; privleak needs it")

    def _compute(self, metric: str, results: dict[str, Any]) -> dict[str, Any]:
        table: dict[str, Callable[[], dict[str, Any]]] = {
            "forget_verbmem_ROUGE": self._verbmem,
            "forget_knowmem_ROUGE": lambda: self._knowmem("forget"),
            "retain_knowmem_ROUGE": lambda: self._knowmem("retain"),
            "extraction_strength": lambda: self._memorisation("es"),
            "exact_memorization": lambda: self._memorisation("em"),
            "privleak": lambda: self._privleak(results),
        }
        if metric in MUSE_MIA_METRICS:
            return self._mia(metric)
        return table[metric]()

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
                :func:`~constrained_unlearn.evaluation.report.run_metrics`.
            skip_privleak: leave privleak out (no retrained-model reference needed).
            overwrite: recompute even when a matching report exists.

        Returns:
            ``{metric: {...}, ..., "provenance": {...}}``.

        Raises:
            ValueError: privleak without a retrained-model reference.
            ProvenanceMismatchError: a retrain log made under other settings.
        """
        top_level = [m for m in self.metrics if not (skip_privleak and m == "privleak")]
        plan = self._plan(top_level)
        self._active = plan
        self._memo = {}
        self._provenance = None
        self._check_retrain(plan)
        return run_metrics(
            plan,
            self._compute,
            name=self.name,
            provenance=self.provenance(),
            top_level=top_level,
            output_dir=output_dir,
            overwrite=overwrite,
        )


def write_retrain_log(
    retrain_model: Any,
    tokenizer: Any,
    data: Mapping[str, Any],
    output_dir: str | os.PathLike[str],
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate the retrained model and save ``<output_dir>/MUSE_EVAL.json`` (with its Min-K%
    AUC and provenance) for the PrivLeak of other models. ``kwargs``: any
    :class:`MuseEvaluator` keyword except ``retrain_logs`` / ``retrain_auc``."""
    if "retrain_logs" in kwargs or "retrain_auc" in kwargs:
        raise ValueError("write_retrain_log makes the reference; do not pass retrain_logs/auc")
    metrics = list(kwargs.pop("metrics", None) or DEFAULT_MUSE_METRICS)
    if "mia_min_k" not in metrics:
        metrics.append("mia_min_k")
    evaluator = MuseEvaluator(retrain_model, tokenizer, data, metrics=metrics, **kwargs)
    return evaluator.evaluate(output_dir, skip_privleak=True)


__all__ = [
    "ALL_MUSE_METRICS",
    "DEFAULT_MUSE_METRICS",
    "MuseEvaluator",
    "write_retrain_log",
]
