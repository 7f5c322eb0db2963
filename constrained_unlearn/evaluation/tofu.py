"""TOFU evaluator: open-unlearning's default suite on a causal LM (specification §3).

Data is ``{TOFU config name: rows}`` (real TOFU from the hub or a local folder, or mini-TOFU).
With ``forget_split="forget10"`` the evaluator reads

    forget10_perturbed      forget metrics and MIA members       question, answer,
                                                                  paraphrased_answer,
                                                                  perturbed_answer (list)
    holdout10               MIA non-members                      question, answer
    retain_perturbed        model utility (retain)               as forget10_perturbed
    real_authors_perturbed  model utility (real authors)         question, answer,
    world_facts_perturbed   model utility (world facts)          perturbed_answer (list)

Work is batched by question set: every answer variant of a set (answer, paraphrase, all
perturbations) is scored in one teacher-forced pass (:mod:`.scoring`), and all greedy
generations of all ROUGE sets go through one :func:`~constrained_unlearn.llm.generate_batched`
call. Only the passes that a requested, not-yet-computed metric needs are run.

Metrics (open-unlearning names; ``{"agg_value", "value_by_index"}`` each):

=========================  ===============================================================
``forget_Q_A_Prob``        mean P_norm = exp(−ℓ̄) of the answer; per index ``prob, avg_loss``
``forget_Q_A_ROUGE``       mean ROUGE-L recall of the greedy answer vs the answer; per index
                           ``rouge1_recall, rougeL_recall, rougeL_f1, input, ground_truth,
                           generation``
``forget_truth_ratio``     ``closer_to_1_better`` mean of min(R, 1/R); per index raw ``score``
``forget_quality``         KS p-value vs the retain log's raw truth ratios (+ ``floor``,
                           ``complete_separation``, ``description``)
``model_utility``          harmonic mean of the nine ``retain_* / ra_* / wf_*`` components
``mia_min_k``              Min-K% (k = 0.4) AUC, forget vs holdout (+ per-side scores)
``privleak``               ((1 − AUC) − (1 − AUC_ret)) / (1 − AUC_ret) × 100
``extraction_strength``    mean ES over forget answers (OU's 1/T' quirk under OU convention)
=========================  ===============================================================

Optional (``metrics=``): ``exact_memorization``, ``mia_loss``, ``mia_zlib``,
``mia_min_k_plus_plus``, ``mia_gradnorm``, ``mia_reference`` (needs ``reference_model``),
``forget_Q_A_gibberish`` (needs ``classifier``), and each of the nine utility components alone.

Empty generations (the model emits EOS at once) are kept as ``""`` and score ROUGE 0. A
reference with no word scores NaN (with a warning), which makes its set's mean NaN and the
model utility an error that names the component: a malformed row never hides in an average.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from constrained_unlearn.evaluation import provenance as prov
from constrained_unlearn.evaluation.attacks import memorisation_result, mia_result, side_scores
from constrained_unlearn.evaluation.classifier import classifier_probabilities
from constrained_unlearn.evaluation.metrics import (
    MODEL_UTILITY_COMPONENTS,
    Convention,
    aggregate_truth_ratio,
    forget_quality,
    model_utility,
    normalised_probability,
    option_normalised_probability,
    rouge_scores,
    tofu_privleak,
    truth_ratios,
)
from constrained_unlearn.evaluation.metrics.truth_ratio import OU_EPSILON
from constrained_unlearn.evaluation.report import (
    ReferenceLog,
    by_index,
    load_reference_log,
    nanmean,
    run_metrics,
    to_jsonable,
    with_bootstrap,
)
from constrained_unlearn.evaluation.scoring import (
    ColumnScores,
    encode_pair,
    per_example_gradnorm,
    score_question_set,
)
from constrained_unlearn.llm.generation import generate_batched
from constrained_unlearn.llm.tokenization import PromptTemplate, encode_prompt

DEFAULT_TOFU_METRICS: tuple[str, ...] = (
    "forget_Q_A_Prob",
    "forget_Q_A_ROUGE",
    "forget_truth_ratio",
    "forget_quality",
    "model_utility",
    "privleak",
    "extraction_strength",
)
"""open-unlearning's default TOFU suite (``configs/eval/tofu.yaml``)."""

UTILITY_COMPONENTS: tuple[str, ...] = MODEL_UTILITY_COMPONENTS
"""The nine metrics model utility is the harmonic mean of (one definition, in ``metrics``)."""
MIA_METRICS: tuple[str, ...] = (
    "mia_min_k",
    "mia_min_k_plus_plus",
    "mia_loss",
    "mia_zlib",
    "mia_gradnorm",
    "mia_reference",
)
OPTIONAL_TOFU_METRICS: tuple[str, ...] = (
    "exact_memorization",
    "forget_Q_A_gibberish",
    *MIA_METRICS,
    *UTILITY_COMPONENTS,
)
ALL_TOFU_METRICS: tuple[str, ...] = DEFAULT_TOFU_METRICS + tuple(
    m for m in OPTIONAL_TOFU_METRICS if m not in DEFAULT_TOFU_METRICS
)

# pre-computes each metric needs (computed first, written to the EVAL file as well)
_DEPENDS: dict[str, tuple[str, ...]] = {
    "forget_quality": ("forget_truth_ratio",),
    "model_utility": UTILITY_COMPONENTS,
    "privleak": ("mia_min_k",),
}

# evaluation sets: prefix → (config name or None for the forget split, columns scored)
_SETS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "forget": (None, ("answer", "paraphrased_answer", "perturbed_answer")),
    "retain": ("retain_perturbed", ("answer", "paraphrased_answer", "perturbed_answer")),
    "ra": ("real_authors_perturbed", ("answer", "perturbed_answer")),
    "wf": ("world_facts_perturbed", ("answer", "perturbed_answer")),
}


class MissingSplitError(ValueError):
    """A TOFU config the requested metrics need is absent from ``data``."""


def _needed_configs(metrics: Sequence[str], forget: str, holdout: str) -> dict[str, str]:
    """``{config: reason}`` of the data configs the metrics read."""
    need: dict[str, str] = {}
    for m in metrics:
        if m.startswith("forget_") or m in ("extraction_strength", "exact_memorization"):
            need.setdefault(forget, m)
        if m in MIA_METRICS or m == "privleak":
            need.setdefault(forget, m)
            need.setdefault(holdout, m)
        if m.startswith(("retain_", "ra_", "wf_")) or m == "model_utility":
            prefix = "retain" if m == "model_utility" else m.split("_")[0]
            prefixes = ("retain", "ra", "wf") if m == "model_utility" else (prefix,)
            for p in prefixes:
                need.setdefault(str(_SETS[p][0]), m)
    return need


def _expand(metrics: Sequence[str]) -> list[str]:
    """Requested metrics with their pre-computes first, each once, in a stable order."""
    out: list[str] = []

    def add(m: str) -> None:
        for dep in _DEPENDS.get(m, ()):
            add(dep)
        if m not in out:
            out.append(m)

    for m in metrics:
        add(m)
    return out


def _rows_of(data: Mapping[str, Any], config: str) -> list[dict[str, Any]]:
    rows = data[config]
    if isinstance(rows, Mapping) and "train" in rows:  # a DatasetDict with TOFU's one split
        rows = rows["train"]
    return [dict(r) for r in rows]


class TofuEvaluator:
    """Evaluate one causal LM on TOFU (open-unlearning's suite; see the module docstring).

    Args:
        model: a Hugging Face causal LM (any device; left as it was found).
        tokenizer: its tokenizer, with a pad token (``llm.ensure_pad_token``).
        data: ``{config name: rows}``; rows are dicts (or a ``datasets.Dataset``).
        forget_split: ``"forget01"``, ``"forget05"`` or ``"forget10"``; the evaluator reads
            ``<forget_split>_perturbed``.
        holdout_split: MIA non-members (``"holdout10"`` pairs with ``"forget10"``).
        template: prompt format (plain ``Question: …\\nAnswer: `` by default; use
            ``PromptTemplate(kind="chat", …)`` for chat models).
        batch_size: sequences per teacher-forced pass and prompts per generation batch.
        max_new_tokens: greedy budget (200). Under ``convention="tofu-original"`` it is the
            budget of prompt + generation, as in the original TOFU code.
        max_length: maximum scored sequence length (prompts are cut from the left).
        convention: ``"open-unlearning"`` (default) or ``"tofu-original"`` (first 300 rows of
            every split, total-length budget, exact ES formula).
        retain_logs: the retain model's log for forget quality and privleak: a
            ``TOFU_EVAL.json`` path, a folder holding one, or the loaded dict.
        compat: ``"open-unlearning"`` accepts a retain log without provenance (an
            open-unlearning log), with a warning.
        reference_model: a second model (e.g. the retain model) for ``mia_reference``.
        metrics: top-level metrics to compute (default :data:`DEFAULT_TOFU_METRICS`; add e.g.
            ``"exact_memorization"`` or ``"mia_loss"`` to the list).
        question_key: question column of the forget split (``"paraphrased_question"`` tests
            rephrasing); MIAs always use ``"question"`` on both sides.
        model_id: the model's name in the report (default: ``config._name_or_path``).
        seed: seed of the bootstrap intervals (recorded).
        classifier: ``(model, tokenizer)`` of a text classifier for ``forget_Q_A_gibberish``.
        progress: show progress bars during generation.

    Raises:
        MissingSplitError: when ``data`` lacks a config a requested metric reads.
        ValueError: on an unknown metric or convention, or ``mia_reference`` without a
            reference model.
    """

    name = "TOFU"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        data: Mapping[str, Any],
        *,
        forget_split: str = "forget10",
        holdout_split: str = "holdout10",
        template: PromptTemplate | None = None,
        batch_size: int = 32,
        max_new_tokens: int = 200,
        max_length: int = 512,
        convention: Convention | str = Convention.OPEN_UNLEARNING,
        retain_logs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        compat: str | None = None,
        reference_model: Any = None,
        metrics: Sequence[str] | None = None,
        question_key: str = "question",
        model_id: str | None = None,
        seed: int = 0,
        classifier: tuple[Any, Any] | None = None,
        progress: bool = False,
    ) -> None:
        self.settings = prov.evaluator_settings(
            "TOFU", convention, compat=compat, batch_size=batch_size
        )
        self.convention = Convention(self.settings.convention)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens} must be ≥ 1")
        self.model = model
        self.tokenizer = tokenizer
        self.forget_split = forget_split.removesuffix("_perturbed")
        self.forget_config = f"{self.forget_split}_perturbed"
        self.holdout_split = holdout_split
        self.template = template if template is not None else PromptTemplate()
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.max_length = max_length
        self.compat = compat
        self.reference_model = reference_model
        self.question_key = question_key
        self.model_id = model_id
        self.seed = seed
        self.classifier = classifier
        self.progress = progress
        self.mia_k = 0.4

        requested = list(metrics) if metrics is not None else list(DEFAULT_TOFU_METRICS)
        unknown = [m for m in requested if m not in ALL_TOFU_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {list(ALL_TOFU_METRICS)}")
        if "mia_reference" in requested and reference_model is None:
            raise ValueError(
                "metric 'mia_reference' needs reference_model= (e.g. the retain model)"
            )
        if "forget_Q_A_gibberish" in requested and classifier is None:
            raise ValueError(
                "metric 'forget_Q_A_gibberish' needs classifier=(model, tokenizer) of a "
                "gibberish detector (class 0 = clean text)"
            )
        self.metrics = requested
        self._plan = _expand(requested)

        needed = _needed_configs(self._plan, self.forget_config, holdout_split)
        missing = {c: why for c, why in needed.items() if c not in data}
        if missing:
            config, why = next(iter(missing.items()))
            hint = (
                "pass holdout_split= naming the non-member split, or leave the MIA metrics "
                "and privleak out of metrics="
                if config == holdout_split
                else "load the full TOFU (or mini-TOFU) configs, or leave the metric out"
            )
            raise MissingSplitError(
                f"data has no config {config!r}, needed by {why!r} (missing: {sorted(missing)}); "
                f"available: {sorted(data)}. {hint}"
            )
        limit = self.settings.max_questions
        # Every evaluation config present is loaded and fingerprinted (not only the ones the
        # requested metrics read), so the cache key does not change with the metric list.
        evaluation_configs = [self.forget_config, holdout_split] + [
            str(c) for c, _ in _SETS.values() if c is not None
        ]
        self.rows: dict[str, list[dict[str, Any]]] = {}
        for config in dict.fromkeys(evaluation_configs):
            if config not in data:
                continue
            rows = _rows_of(data, config)
            if limit is not None:
                rows = rows[:limit]
            if not rows and config in needed:
                raise MissingSplitError(
                    f"data[{config!r}] is empty but {needed[config]!r} needs its rows"
                )
            self.rows[config] = rows

        self._memo: dict[Any, Any] = {}
        self._retain_source = retain_logs
        self._retain_log: ReferenceLog | None = None
        self._provenance: dict[str, Any] | None = None

    # ------------------------------------------------------------------ provenance
    def _retain_log_loaded(self) -> ReferenceLog | None:
        if self._retain_log is None and self._retain_source is not None:
            self._retain_log = load_reference_log(self._retain_source, name=self.name)
        return self._retain_log

    def provenance(self) -> dict[str, Any]:
        """This run's provenance (see :mod:`.provenance`); computed once per evaluator."""
        if self._provenance is not None:
            return self._provenance
        data: dict[str, Any] = {
            "forget_split": self.forget_split,
            "holdout_split": self.holdout_split,
            "question_key": self.question_key,
            "max_questions": self.settings.max_questions,
            "configs": {c: prov.data_fingerprint(r) for c, r in sorted(self.rows.items())},
            "rows": {c: len(r) for c, r in sorted(self.rows.items())},
        }
        data["forget_data_sha256"] = data["configs"].get(self.forget_config)
        data["holdout_data_sha256"] = data["configs"].get(self.holdout_split)
        reference: dict[str, Any] = {}
        log = self._retain_log_loaded()
        if log is not None:
            reference["retain_log_sha256"] = prov.sha256_json(
                [to_jsonable(log.truth_ratios), log.mia_min_k_auc]
            )
        if self.reference_model is not None:
            reference["reference_model_sha256"] = prov.weights_hash(self.reference_model)
        if self.classifier is not None:
            reference["classifier_sha256"] = prov.weights_hash(self.classifier[0])
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
            "template": {
                "kind": self.template.kind,
                "plain_format": self.template.plain_format
                if self.template.kind == "plain"
                else None,
                "system_prompt": self.template.system_prompt
                if self.template.kind == "chat"
                else None,
                "chat_template_kwargs": dict(self.template.chat_template_kwargs),
            },
            "data": data,
            "generation": {
                "do_sample": False,
                "max_new_tokens": self.max_new_tokens,
                "length_includes_prompt": self.settings.generation_length_includes_prompt,
                "batch_size": self.batch_size,
                "stop_strings": [],
                "post_processing": "cut at first EOS, special tokens skipped, stripped",
            },
            "scoring": {
                "batch_size": self.batch_size,
                "max_length": self.max_length,
                "mia_k": self.mia_k,
                "mia_max_tokens": None,
            },
            "reference": reference,
            "seed": self.seed,
            "environment": prov.environment(),
        }
        self._provenance = prov.finalise(out)
        return self._provenance

    # ------------------------------------------------------------------ intermediates
    def _set_rows(self, prefix: str) -> list[dict[str, Any]]:
        if prefix == "forget":
            return self.rows[self.forget_config]
        if prefix == "holdout":
            return self.rows[self.holdout_split]
        return self.rows[str(_SETS[prefix][0])]

    def _scores(self, prefix: str, question_key: str = "question") -> dict[str, ColumnScores]:
        key = ("scores", prefix, question_key)
        if key not in self._memo:
            columns = ("answer",) if prefix == "holdout" else _SETS[prefix][1]
            if prefix == "forget" and question_key != self.question_key:
                columns = ("answer",)  # MIA members with the plain question
            self._memo[key] = score_question_set(
                self.model,
                self.tokenizer,
                self._set_rows(prefix),
                columns,
                question_key=question_key,
                template=self.template,
                batch_size=self.batch_size,
                max_length=self.max_length,
            )
        return self._memo[key]

    def _forget_scores(self) -> dict[str, ColumnScores]:
        return self._scores("forget", self.question_key)

    def _mia_scores(self, side: str) -> ColumnScores:
        return self._scores(side, "question")["answer"]

    def _question_key_for(self, prefix: str) -> str:
        return self.question_key if prefix == "forget" else "question"

    def _prompts(self, prefix: str) -> list[str]:
        qk = self._question_key_for(prefix)
        return [
            self.template.format_prompt(self.tokenizer, str(r[qk])) for r in self._set_rows(prefix)
        ]

    def _generations(self, prefix: str, wanted: Sequence[str]) -> list[str]:
        """Greedy answers for ``prefix``; all sets in ``wanted`` are generated in one call."""
        key = ("generations", prefix)
        if key not in self._memo:
            todo = [
                p for p in dict.fromkeys([prefix, *wanted]) if ("generations", p) not in self._memo
            ]
            prompts: list[str] = []
            spans: dict[str, tuple[int, int]] = {}
            for p in todo:
                start = len(prompts)
                prompts.extend(self._prompts(p))
                spans[p] = (start, len(prompts))
            texts = self._generate(prompts)
            for p, (lo, hi) in spans.items():
                self._memo[("generations", p)] = [t.strip() for t in texts[lo:hi]]
        return self._memo[key]

    def _generate(self, prompts: list[str]) -> list[str]:
        add_special = self.template.adds_special_tokens
        if not self.settings.generation_length_includes_prompt:
            return generate_batched(
                self.model,
                self.tokenizer,
                prompts,
                max_new_tokens=self.max_new_tokens,
                batch_size=self.batch_size,
                add_special_tokens=add_special,
                progress=self.progress,
            )
        # tofu-original: max_length counts the prompt. Each prompt gets the budget it would
        # have alone; prompts with equal budgets are generated together.
        budgets: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            length = len(encode_prompt(self.tokenizer, p, add_special_tokens=add_special))
            budgets.setdefault(max(1, self.max_new_tokens - length), []).append(i)
        out = [""] * len(prompts)
        for budget, idx in budgets.items():
            texts = generate_batched(
                self.model,
                self.tokenizer,
                [prompts[i] for i in idx],
                max_new_tokens=budget,
                batch_size=self.batch_size,
                add_special_tokens=add_special,
            )
            for i, t in zip(idx, texts):
                out[i] = t
        return out

    def _reference_answers(self, prefix: str) -> list[str]:
        out = []
        for r in self._set_rows(prefix):
            ids = self.tokenizer(str(r["answer"]), add_special_tokens=False)["input_ids"]
            out.append(self.tokenizer.decode(ids, skip_special_tokens=True).strip())
        return out

    # ------------------------------------------------------------------ metrics
    def _prob(self, prefix: str) -> dict[str, Any]:
        nll = self._scores(prefix, self._question_key_for(prefix))["answer"].mean_nll()
        prob = normalised_probability(nll)
        metric = {
            "agg_value": nanmean(prob),
            "value_by_index": by_index(
                [{"prob": float(p), "avg_loss": float(loss)} for p, loss in zip(prob, nll)]
            ),
        }
        return with_bootstrap(metric, prob, seed=self.seed)

    def _prob_normalised(self, prefix: str) -> dict[str, Any]:
        scores = self._scores(prefix)
        prob = option_normalised_probability(
            scores["answer"].mean_nll(), scores["perturbed_answer"].grouped_mean_nll()
        )
        metric = {
            "agg_value": nanmean(prob),
            "value_by_index": by_index([{"prob": float(p)} for p in prob]),
        }
        return with_bootstrap(metric, prob, seed=self.seed)

    def _truth_ratio(self, prefix: str, aggregator: str) -> dict[str, Any]:
        scores = self._scores(prefix, self._question_key_for(prefix))
        true_column = "answer" if prefix in ("ra", "wf") else "paraphrased_answer"
        ratios = truth_ratios(
            scores[true_column].mean_nll(), scores["perturbed_answer"].grouped_mean_nll()
        )
        if aggregator == "closer_to_1_better":
            per = np.minimum(ratios, 1.0 / (ratios + OU_EPSILON))
        else:
            per = np.maximum(0.0, 1.0 - ratios)
        metric = {
            "agg_value": aggregate_truth_ratio(ratios, aggregator),  # type: ignore[arg-type]
            "value_by_index": by_index([{"score": float(r)} for r in ratios]),
            "aggregator": aggregator,
        }
        return with_bootstrap(metric, per, seed=self.seed)

    def _rouge(self, prefix: str, results: Mapping[str, Any]) -> dict[str, Any]:
        # generate every ROUGE split still to come in one batched pass
        wanted = [
            p
            for p in ("forget", "retain", "ra", "wf")
            if f"{p}_Q_A_ROUGE" in self._plan and f"{p}_Q_A_ROUGE" not in results
        ]
        generations = self._generations(prefix, wanted)
        references = self._reference_answers(prefix)
        prompts = self._prompts(prefix)
        scores = rouge_scores(generations, references, use_stemmer=self.settings.rouge_use_stemmer)
        recall = np.array([s.rougeL_recall for s in scores])
        items = [
            {
                "rouge1_recall": s.rouge1_recall,
                "rougeL_recall": s.rougeL_recall,
                "rougeL_f1": s.rougeL_f1,
                "input": prompt,
                "ground_truth": ref,
                "generation": gen,
            }
            for s, prompt, ref, gen in zip(scores, prompts, references, generations)
        ]
        metric = {"agg_value": nanmean(recall), "value_by_index": by_index(items)}
        return with_bootstrap(metric, recall, seed=self.seed)

    def _memorisation(self, kind: str) -> dict[str, Any]:
        correct = self._forget_scores()["answer"].stats.drop_last().correct
        return memorisation_result(
            correct, kind, es_ou_quirk=self.settings.es_ou_quirk, seed=self.seed
        )

    def _mia(self, attack: str) -> dict[str, Any]:
        scores: dict[str, np.ndarray] = {}
        for side in ("forget", "holdout"):
            col = self._mia_scores(side)

            def texts(col: Any = col) -> list[str]:
                return [
                    self.tokenizer.decode(ids, skip_special_tokens=True) for ids in col.target_ids
                ]

            def gradnorm(side: str = side) -> np.ndarray:
                sequences = [
                    encode_pair(
                        self.tokenizer,
                        str(r["question"]),
                        str(r["answer"]),
                        template=self.template,
                        max_length=self.max_length,
                    )
                    for r in self._set_rows(side)
                ]
                return per_example_gradnorm(
                    self.model,
                    sequences,
                    batch_size=self.batch_size,
                    pad_token_id=self.tokenizer.pad_token_id,
                )

            scores[side] = side_scores(
                attack,
                col.stats,
                self.mia_k,
                texts=texts,
                reference_nll=functools.partial(self._reference_nll, side),
                gradnorm=gradnorm,
            )
        return mia_result(scores)

    def _reference_nll(self, side: str) -> np.ndarray:
        key = ("reference", side)
        if key not in self._memo:
            self._memo[key] = score_question_set(
                self.reference_model,
                self.tokenizer,
                self._set_rows(side),
                ("answer",),
                template=self.template,
                batch_size=self.batch_size,
                max_length=self.max_length,
            )["answer"].mean_nll()
        return self._memo[key]

    def _forget_quality(self, results: Mapping[str, Any]) -> dict[str, Any]:
        log = self._retain_log_loaded()
        assert log is not None and log.truth_ratios is not None
        mine = [
            v["score"]
            for _, v in sorted(
                results["forget_truth_ratio"]["value_by_index"].items(),
                key=lambda kv: int(kv[0]),
            )
        ]
        fq = forget_quality(mine, log.truth_ratios)
        return {
            "agg_value": fq.pvalue,
            "floor": fq.floor,
            "complete_separation": fq.complete_separation,
            "statistic": fq.statistic,
            "n": fq.n,
            "m": fq.m,
            "description": fq.describe(),
        }

    def _privleak(self, results: Mapping[str, Any]) -> dict[str, Any]:
        log = self._retain_log_loaded()
        assert log is not None and log.mia_min_k_auc is not None
        auc = float(results["mia_min_k"]["agg_value"])
        return {
            "agg_value": tofu_privleak(auc, auc_retain=log.mia_min_k_auc),
            "auc": auc,
            "retain_auc": log.mia_min_k_auc,
        }

    def _model_utility(self, results: Mapping[str, Any]) -> dict[str, Any]:
        components = {k: float(results[k]["agg_value"]) for k in UTILITY_COMPONENTS}
        return {"agg_value": model_utility(components), "components": components}

    def _gibberish(self) -> dict[str, Any]:
        assert self.classifier is not None
        wanted = [p for p in ("forget", "retain", "ra", "wf") if f"{p}_Q_A_ROUGE" in self._plan]
        generations = self._generations("forget", wanted)
        probs = classifier_probabilities(
            self.classifier[0], self.classifier[1], generations, batch_size=self.batch_size
        )
        metric = {
            "agg_value": nanmean(probs),
            "value_by_index": by_index([{"score": float(p)} for p in probs]),
        }
        return with_bootstrap(metric, probs, seed=self.seed)

    def _compute(self, metric: str, results: dict[str, Any]) -> dict[str, Any]:
        """One metric; ``results`` holds the metrics computed before it in the plan."""
        table: dict[str, Callable[[], dict[str, Any]]] = {
            "forget_Q_A_Prob": lambda: self._prob("forget"),
            "retain_Q_A_Prob": lambda: self._prob("retain"),
            "ra_Q_A_Prob_normalised": lambda: self._prob_normalised("ra"),
            "wf_Q_A_Prob_normalised": lambda: self._prob_normalised("wf"),
            "forget_truth_ratio": lambda: self._truth_ratio("forget", "closer_to_1_better"),
            "retain_Truth_Ratio": lambda: self._truth_ratio("retain", "true_better"),
            "ra_Truth_Ratio": lambda: self._truth_ratio("ra", "true_better"),
            "wf_Truth_Ratio": lambda: self._truth_ratio("wf", "true_better"),
            "forget_Q_A_ROUGE": lambda: self._rouge("forget", results),
            "retain_Q_A_ROUGE": lambda: self._rouge("retain", results),
            "ra_Q_A_ROUGE": lambda: self._rouge("ra", results),
            "wf_Q_A_ROUGE": lambda: self._rouge("wf", results),
            "extraction_strength": lambda: self._memorisation("es"),
            "exact_memorization": lambda: self._memorisation("em"),
            "forget_quality": lambda: self._forget_quality(results),
            "privleak": lambda: self._privleak(results),
            "model_utility": lambda: self._model_utility(results),
            "forget_Q_A_gibberish": self._gibberish,
        }
        if metric in MIA_METRICS:
            return self._mia(metric)
        return table[metric]()

    # ------------------------------------------------------------------ checks
    def _check_retain_log(self, plan: Sequence[str]) -> None:
        needs = [m for m in ("forget_quality", "privleak") if m in plan]
        if not needs:
            return
        log = self._retain_log_loaded()
        if log is None:
            raise ValueError(
                f"{' and '.join(needs)} need the retain model's log: pass retain_logs= (a "
                "TOFU_EVAL.json of the retain model, see write_retain_log), or call "
                "evaluate(skip_forget_quality=True, skip_privleak=True) to leave them out"
            )
        current = self.provenance()
        for metric in needs:
            prov.check_reference_log(
                current, log.provenance, metric=metric, compat=self.compat, source=log.source
            )
        if "forget_quality" in needs:
            if log.truth_ratios is None:
                raise ValueError(
                    f"{log.source} has no forget_truth_ratio.value_by_index: forget quality "
                    "needs the retain model's per-question truth ratios"
                )
            n = len(self.rows[self.forget_config])
            if log.provenance is None and log.truth_ratios.size != n:
                raise ValueError(
                    f"{log.source} holds {log.truth_ratios.size} truth ratios but "
                    f"{self.forget_config} has {n} questions here: the log belongs to another "
                    "forget split (or another question limit)"
                )
        if "privleak" in needs and log.mia_min_k_auc is None:
            raise ValueError(
                f"{log.source} has no mia_min_k.agg_value: privleak needs the retain model's "
                "Min-K% AUC (evaluate the retain model with mia_min_k, the default suite does)"
            )

    # ------------------------------------------------------------------ run
    def evaluate(
        self,
        output_dir: str | os.PathLike[str] | None = None,
        *,
        skip_forget_quality: bool = False,
        skip_privleak: bool = False,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Compute the requested metrics; write ``TOFU_EVAL.json`` and ``TOFU_SUMMARY.json``.

        Args:
            output_dir: run folder for the two reports (``None``: write nothing). Results of
                an earlier run in the same folder are reused only when their provenance has
                the same cache key (same weights and settings) and ``overwrite`` is false;
                otherwise they are recomputed (with a warning naming what changed).
            skip_forget_quality: leave forget quality out (no retain log needed for it).
            skip_privleak: leave privleak out (no retain log needed for it).
            overwrite: recompute everything even when a matching report exists.

        Returns:
            ``{metric: {...}, ..., "provenance": {...}}`` — every computed metric (pre-computes
            included) in open-unlearning's shape.

        Raises:
            ValueError: when forget quality / privleak are requested without a retain log.
            ProvenanceMismatchError: when the retain log was made under other settings.
        """
        skipped = set()
        if skip_forget_quality:
            skipped.add("forget_quality")
        if skip_privleak:
            skipped.add("privleak")
        plan = _expand([m for m in self.metrics if m not in skipped])
        self._plan = plan
        # The model may have changed since a previous call (in-loop evaluation): nothing
        # computed for it is reused from memory.
        self._memo = {}
        self._provenance = None
        self._check_retain_log(plan)
        provenance = self.provenance()
        top_level = [m for m in self.metrics if m not in skipped]
        return run_metrics(
            plan,
            self._compute,
            name=self.name,
            provenance=provenance,
            top_level=top_level,
            output_dir=output_dir,
            overwrite=overwrite,
        )


def write_retain_log(
    retain_model: Any,
    tokenizer: Any,
    data: Mapping[str, Any],
    output_dir: str | os.PathLike[str],
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate the retain model and save its log (``<output_dir>/TOFU_EVAL.json``).

    The log holds what forget quality and privleak of other models need — the raw forget truth
    ratios and the Min-K% AUC — plus the rest of the default suite and the provenance that
    later runs are checked against. Pass the same settings (split, template, convention, …)
    that the evaluated models will use.

    Args:
        retain_model: the model fine-tuned without the forget split.
        tokenizer: as for :class:`TofuEvaluator`.
        data: as for :class:`TofuEvaluator`.
        output_dir: where to write ``TOFU_EVAL.json`` / ``TOFU_SUMMARY.json``.
        **kwargs: any :class:`TofuEvaluator` keyword except ``retain_logs``.

    Returns:
        The retain model's results (as :meth:`TofuEvaluator.evaluate`).
    """
    if "retain_logs" in kwargs:
        raise ValueError("write_retain_log makes the retain log; do not pass retain_logs=")
    metrics = list(kwargs.pop("metrics", None) or DEFAULT_TOFU_METRICS)
    for needed in ("forget_truth_ratio", "mia_min_k"):
        if needed not in metrics:
            metrics.append(needed)
    evaluator = TofuEvaluator(retain_model, tokenizer, data, metrics=metrics, **kwargs)
    results = evaluator.evaluate(output_dir, skip_forget_quality=True, skip_privleak=True)
    return results


__all__ = [
    "ALL_TOFU_METRICS",
    "DEFAULT_TOFU_METRICS",
    "MissingSplitError",
    "OPTIONAL_TOFU_METRICS",
    "TofuEvaluator",
    "UTILITY_COMPONENTS",
    "write_retain_log",
]
