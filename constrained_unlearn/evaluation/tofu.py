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
perturbations) is scored in one teacher-forced pass (`scoring`), and all greedy
generations of all ROUGE sets go through one [`generate_batched`][constrained_unlearn.llm.generate_batched]
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

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from constrained_unlearn.evaluation import provenance as prov
from constrained_unlearn.evaluation.base import (
    Evaluator,
    MetricSpec,
    MissingSplitError,
    method_call,
)
from constrained_unlearn.evaluation.classifier import classifier_probabilities
from constrained_unlearn.evaluation.metrics import (
    MODEL_UTILITY_COMPONENTS,
    Convention,
    aggregate_truth_ratio,
    forget_quality,
    model_utility,
    normalized_probability,
    option_normalized_probability,
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
    to_jsonable,
    with_bootstrap,
)
from constrained_unlearn.evaluation.scoring import (
    ColumnScores,
    encode_pairs,
    per_example_gradnorm,
    score_question_set,
)
from constrained_unlearn.llm.generation import default_max_new_tokens, generate_batched
from constrained_unlearn.llm.tokenization import PromptTemplate, check_tokenization, encode_prompts

__all__ = [
    "ALL_TOFU_METRICS",
    "DEFAULT_TOFU_METRICS",
    "EVALUATION_SETS",
    "MissingSplitError",
    "OPTIONAL_TOFU_METRICS",
    "TofuEvaluator",
    "UTILITY_COMPONENTS",
    "required_configs",
    "write_retain_log",
]

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

EVALUATION_SETS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "forget": (None, ("answer", "paraphrased_answer", "perturbed_answer")),
    "retain": ("retain_perturbed", ("answer", "paraphrased_answer", "perturbed_answer")),
    "ra": ("real_authors_perturbed", ("answer", "perturbed_answer")),
    "wf": ("world_facts_perturbed", ("answer", "perturbed_answer")),
}
"""Question sets: key → (TOFU config, ``None`` for the forget split; answer columns scored).
The data key ``"holdout"`` (MIA non-members) is the ``holdout_split`` config."""


def _table() -> dict[str, MetricSpec]:
    """The TOFU metric table (see `base`), in `ALL_TOFU_METRICS` order."""
    mia = ("forget", "holdout")
    table: dict[str, MetricSpec] = {
        "forget_Q_A_Prob": MetricSpec(lambda ev, r: ev.prob("forget"), data=("forget",)),
        "forget_Q_A_ROUGE": MetricSpec(
            lambda ev, r: ev.rouge("forget"), data=("forget",), generations=("forget",)
        ),
        "forget_truth_ratio": MetricSpec(
            lambda ev, r: ev.truth_ratio("forget", "closer_to_1_better"), data=("forget",)
        ),
        "forget_quality": MetricSpec(
            lambda ev, r: ev.forget_quality_metric(r),
            data=("forget",),
            depends=("forget_truth_ratio",),
        ),
        "model_utility": MetricSpec(
            lambda ev, r: ev.model_utility_metric(r),
            data=("retain", "ra", "wf"),
            depends=UTILITY_COMPONENTS,
        ),
        "privleak": MetricSpec(
            lambda ev, r: ev.privleak_metric(r), data=mia, depends=("mia_min_k",)
        ),
        "extraction_strength": MetricSpec(
            lambda ev, r: ev.memorization_metric("es"), data=("forget",)
        ),
        "exact_memorization": MetricSpec(
            lambda ev, r: ev.memorization_metric("em"), data=("forget",)
        ),
        "forget_Q_A_gibberish": MetricSpec(
            lambda ev, r: ev.gibberish(),
            data=("forget",),
            generations=("forget",),
            requires=(
                (
                    "classifier",
                    "classifier=(model, tokenizer) of a gibberish detector (class 0 = clean text)",
                ),
            ),
        ),
    }
    for attack in MIA_METRICS:
        table[attack] = MetricSpec(method_call("mia_metric", attack), data=mia)
    table["mia_reference"] = replace(
        table["mia_reference"],
        requires=(("reference_model", "reference_model= (e.g. the retain model)"),),
    )
    for prefix in ("retain", "ra", "wf"):
        prob = f"{prefix}_Q_A_Prob" if prefix == "retain" else f"{prefix}_Q_A_Prob_normalised"
        table[prob] = MetricSpec(
            method_call("prob" if prefix == "retain" else "prob_normalised", prefix),
            data=(prefix,),
        )
        table[f"{prefix}_Q_A_ROUGE"] = MetricSpec(
            method_call("rouge", prefix), data=(prefix,), generations=(prefix,)
        )
        table[f"{prefix}_Truth_Ratio"] = MetricSpec(
            method_call("truth_ratio", prefix, "true_better"), data=(prefix,)
        )
    assert set(table) == set(ALL_TOFU_METRICS)
    return {m: table[m] for m in ALL_TOFU_METRICS}


TOFU_METRICS: dict[str, MetricSpec] = _table()
"""``{metric: MetricSpec}``: what each TOFU metric computes, reads and depends on."""


def _config_of(key: str, forget_config: str, holdout: str) -> str:
    if key == "forget":
        return forget_config
    if key == "holdout":
        return holdout
    return str(EVALUATION_SETS[key][0])


def required_configs(
    metrics: Sequence[str] | None = None,
    *,
    forget_split: str = "forget10",
    holdout_split: str = "holdout10",
) -> list[str]:
    """The TOFU configs an evaluation of ``metrics`` (default suite) reads, in plan order.

    Load only these (e.g. ``{c: load_tofu(c, source) for c in required_configs(...)}``): the
    evaluator needs nothing else."""
    forget_config = f"{forget_split.removesuffix('_perturbed')}_perturbed"
    chosen = list(metrics) if metrics is not None else list(DEFAULT_TOFU_METRICS)
    unknown = [m for m in chosen if m not in TOFU_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(ALL_TOFU_METRICS)}")
    plan = TofuEvaluator.expand(chosen)
    keys = TofuEvaluator.data_needs(plan)
    return list(dict.fromkeys(_config_of(k, forget_config, holdout_split) for k in keys))


def _rows_of(data: Mapping[str, Any], config: str) -> list[dict[str, Any]]:
    rows = data[config]
    if isinstance(rows, Mapping) and "train" in rows:  # a DatasetDict with TOFU's one split
        rows = rows["train"]
    return [dict(r) for r in rows]


class TofuEvaluator(Evaluator):
    """Evaluate one causal LM on TOFU (open-unlearning's suite; see the module docstring).

    Args:
        model: a Hugging Face causal LM (any device; left as it was found).
        tokenizer: its tokenizer, with a pad token (``llm.ensure_pad_token``).
        data: ``{config name: rows}``; rows are dicts (or a ``datasets.Dataset``). Only the
            configs of `required_configs` are needed.
        forget_split: ``"forget01"``, ``"forget05"`` or ``"forget10"``; the evaluator reads
            ``<forget_split>_perturbed``.
        holdout_split: MIA non-members (``"holdout10"`` pairs with ``"forget10"``).
        template: prompt format (plain ``Question: …\\nAnswer: `` by default; use
            ``PromptTemplate(kind="chat", …)`` for chat models).
        batch_size: sequences per teacher-forced pass and prompts per generation batch.
        max_new_tokens: greedy budget. ``None`` (default): what fits the model's context,
            ``min(200, max_position_embeddings − longest prompt of the set)`` (200 when the
            config gives no context length). Under ``convention="tofu-original"`` it is the
            budget of prompt + generation (``None``: 200), as in the original TOFU code.
        max_length: maximum scored sequence length (prompts are cut from the left).
        convention: ``"open-unlearning"`` (default) or ``"tofu-original"`` (first 300 rows of
            every split, total-length budget, exact ES formula).
        tokenization: how teacher-forced (question, answer) pairs are tokenised: ``"joint"``
            (one string, the first ``len(tokenize(prompt))`` ids masked, as open-unlearning
            and the original TOFU code; the default of both conventions) or ``"separate"``
            (prompt and answer apart: the library's training encoding, the right choice for a
            model trained with ``QADataset``'s default). ``None``: the convention's.
        retain_logs: the retain model's log for forget quality and privleak: a
            ``TOFU_EVAL.json`` path, a folder holding one, or the loaded dict.
        compat: ``"open-unlearning"`` accepts a retain log without provenance (an
            open-unlearning log), with a warning.
        allow_self_reference: accept a retain log made by the very weights under evaluation
            (refused by default: forget quality would be 1 and privleak 0 by construction);
            a warning is raised when it happens.
        reference_model: a second model (e.g. the retain model) for ``mia_reference``.
        metrics: top-level metrics to compute (default `DEFAULT_TOFU_METRICS`; add e.g.
            ``"exact_memorization"`` or ``"mia_loss"`` to the list).
        question_key: question column of the forget split (``"paraphrased_question"`` tests
            rephrasing); MIAs always use ``"question"`` on both sides.
        model_id: the model's name in the report (default: ``config._name_or_path``).
        seed: seed of the bootstrap intervals (recorded).
        classifier: ``(model, tokenizer)`` of a text classifier for ``forget_Q_A_gibberish``.
        progress: progress bars over the metrics and the generation batches (only when
            stderr is a terminal).

    Raises:
        MissingSplitError: when ``data`` lacks a config a requested metric reads.
        ValueError: on an unknown metric, convention or tokenization, or ``mia_reference``
            without a reference model.
    """

    name = "TOFU"
    METRICS = TOFU_METRICS
    DEFAULT_METRICS = DEFAULT_TOFU_METRICS

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
        max_new_tokens: int | None = None,
        max_length: int = 512,
        convention: Convention | str = Convention.OPEN_UNLEARNING,
        tokenization: str | None = None,
        retain_logs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        compat: str | None = None,
        allow_self_reference: bool = False,
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
        if tokenization is not None:
            self.settings = replace(self.settings, tokenization=check_tokenization(tokenization))
        self.convention = Convention(self.settings.convention)
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} must be ≥ 1 (or None: what fits the context)"
            )
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
        self.allow_self_reference = allow_self_reference
        self.reference_model = reference_model
        self.question_key = question_key
        self.model_id = model_id
        self.seed = seed
        self.classifier = classifier
        self.progress = progress
        self.mia_k = 0.4

        self.metrics = self.select_metrics(metrics)
        self.plan = self.expand(self.metrics)

        needed = {self.config_of(k): m for k, m in self.data_needs(self.plan).items()}
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

        def lookup(source: Mapping[str, Any], config: str) -> list[dict[str, Any]] | None:
            if config not in source:
                return None
            rows = _rows_of(source, config)
            return rows[:limit] if limit is not None else rows

        # Every evaluation config present is loaded and fingerprinted (not only the ones the
        # requested metrics read), so the cache key does not change with the metric list.
        names = [self.forget_config, holdout_split] + [
            str(c) for c, _ in EVALUATION_SETS.values() if c is not None
        ]
        self.load_rows(data, needed, names, lookup)
        self.memo: dict[Any, Any] = {}
        self._retain_source = retain_logs
        self._retain_log: ReferenceLog | None = None

    def config_of(self, key: str) -> str:
        """The TOFU config a data key of the table names."""
        return _config_of(key, self.forget_config, self.holdout_split)

    # ------------------------------------------------------------------ provenance
    def _retain_log_loaded(self) -> ReferenceLog | None:
        if self._retain_log is None and self._retain_source is not None:
            self._retain_log = load_reference_log(self._retain_source, name=self.name)
        return self._retain_log

    def build_provenance(self) -> dict[str, Any]:
        """This run's provenance (see `provenance`)."""
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
        generation: dict[str, Any] = {
            "do_sample": False,
            "max_new_tokens": self.max_new_tokens,
            "length_includes_prompt": self.settings.generation_length_includes_prompt,
            "batch_size": self.batch_size,
            "stop_strings": [],
            "post_processing": "cut at first EOS, special tokens skipped, stripped",
        }
        if self.max_new_tokens is None:
            generation["max_new_tokens_rule"] = (
                "200 total (prompt included)"
                if self.settings.generation_length_includes_prompt
                else "min(200, max_position_embeddings - longest prompt of the set)"
            )
        out = {
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
            "generation": generation,
            "scoring": {
                "batch_size": self.batch_size,
                "max_length": self.max_length,
                "mia_k": self.mia_k,
                "mia_max_tokens": None,
                "tokenization": self.settings.tokenization,
            },
            "reference": reference,
        }
        return prov.evaluator_provenance(self, out)

    # ------------------------------------------------------------------ intermediates
    def set_rows(self, key: str) -> list[dict[str, Any]]:
        """The rows of a data key (``"forget"``, ``"holdout"``, ``"retain"``, ``"ra"``, ``"wf"``)."""
        return self.rows[self.config_of(key)]

    def scores(self, prefix: str, question_key: str = "question") -> dict[str, ColumnScores]:
        """Teacher-forced scores of every answer column of a set (one batched pass, memoised)."""
        key = ("scores", prefix, question_key)
        if key not in self.memo:
            columns = ("answer",) if prefix == "holdout" else EVALUATION_SETS[prefix][1]
            if prefix == "forget" and question_key != self.question_key:
                columns = ("answer",)  # MIA members with the plain question
            self.memo[key] = score_question_set(
                self.model,
                self.tokenizer,
                self.set_rows(prefix),
                columns,
                question_key=question_key,
                template=self.template,
                batch_size=self.batch_size,
                max_length=self.max_length,
                tokenization=self.settings.tokenization,  # type: ignore[arg-type]
            )
        return self.memo[key]

    def _question_key_for(self, prefix: str) -> str:
        return self.question_key if prefix == "forget" else "question"

    def _prompts(self, prefix: str) -> list[str]:
        qk = self._question_key_for(prefix)
        return [
            self.template.format_prompt(self.tokenizer, str(r[qk])) for r in self.set_rows(prefix)
        ]

    def generate_sets(self, group: str, keys: Sequence[str]) -> dict[str, list[str]]:
        """Greedy answers of the question sets ``keys``: one call per generation budget
        (one call in all unless ``max_new_tokens=None`` gives the sets different budgets)."""
        prompts = {k: self._prompts(k) for k in keys}
        by_budget: dict[int | None, list[str]] = {}
        for k in keys:
            by_budget.setdefault(self._budget(prompts[k]), []).append(k)
        out: dict[str, list[str]] = {}
        for budget, members in by_budget.items():
            flat: list[str] = []
            spans: dict[str, tuple[int, int]] = {}
            for k in members:
                spans[k] = (len(flat), len(flat) + len(prompts[k]))
                flat.extend(prompts[k])
            texts = self._generate(flat, budget)
            for k, (lo, hi) in spans.items():
                out[k] = [t.strip() for t in texts[lo:hi]]
        return {k: out[k] for k in keys}

    def _budget(self, prompts: Sequence[str]) -> int | None:
        """The new-token budget of one set (``None`` under the total-length rule)."""
        if self.settings.generation_length_includes_prompt:
            return None
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        special = self.template.adds_special_tokens
        longest = max(
            map(len, encode_prompts(self.tokenizer, prompts, add_special_tokens=special)),
            default=0,
        )
        return default_max_new_tokens(self.model, longest)

    def _generate(self, prompts: list[str], budget: int | None) -> list[str]:
        add_special = self.template.adds_special_tokens
        if budget is not None:
            return generate_batched(
                self.model,
                self.tokenizer,
                prompts,
                max_new_tokens=budget,
                batch_size=self.batch_size,
                add_special_tokens=add_special,
                progress=self.progress,
            )
        # tofu-original: max_length counts the prompt. Each prompt gets the budget it would
        # have alone; prompts with equal budgets are generated together.
        total = self.max_new_tokens if self.max_new_tokens is not None else 200
        budgets: dict[int, list[int]] = {}
        lengths = map(len, encode_prompts(self.tokenizer, prompts, add_special_tokens=add_special))
        for i, length in enumerate(lengths):
            budgets.setdefault(max(1, total - length), []).append(i)
        out = [""] * len(prompts)
        for each, idx in budgets.items():
            texts = generate_batched(
                self.model,
                self.tokenizer,
                [prompts[i] for i in idx],
                max_new_tokens=each,
                batch_size=self.batch_size,
                add_special_tokens=add_special,
            )
            for i, t in zip(idx, texts):
                out[i] = t
        return out

    def _reference_answers(self, prefix: str) -> list[str]:
        out = []
        for r in self.set_rows(prefix):
            ids = self.tokenizer(str(r["answer"]), add_special_tokens=False)["input_ids"]
            out.append(self.tokenizer.decode(ids, skip_special_tokens=True).strip())
        return out

    # ------------------------------------------------------------------ metrics
    def prob(self, prefix: str) -> dict[str, Any]:
        """``<set>_Q_A_Prob``: mean P_norm = exp(−ℓ̄) of the answer."""
        nll = self.scores(prefix, self._question_key_for(prefix))["answer"].mean_nll()
        prob = normalized_probability(nll)
        metric = {
            "agg_value": nanmean(prob),
            "value_by_index": by_index(
                [{"prob": float(p), "avg_loss": float(loss)} for p, loss in zip(prob, nll)]
            ),
        }
        return with_bootstrap(metric, prob, seed=self.seed)

    def prob_normalised(self, prefix: str) -> dict[str, Any]:
        """``<set>_Q_A_Prob_normalized``: the answer's probability among all the options."""
        scores = self.scores(prefix)
        prob = option_normalized_probability(
            scores["answer"].mean_nll(), scores["perturbed_answer"].grouped_mean_nll()
        )
        metric = {
            "agg_value": nanmean(prob),
            "value_by_index": by_index([{"prob": float(p)} for p in prob]),
        }
        return with_bootstrap(metric, prob, seed=self.seed)

    def truth_ratio(self, prefix: str, aggregator: str) -> dict[str, Any]:
        """``<set>_truth_ratio`` / ``_Truth_Ratio`` with open-unlearning's aggregators."""
        scores = self.scores(prefix, self._question_key_for(prefix))
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

    def rouge(self, prefix: str) -> dict[str, Any]:
        """``<set>_Q_A_ROUGE``: ROUGE-L recall of the greedy answers."""
        generations = self.generations(prefix)
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

    def memorization_stats(self) -> Any:
        return self.scores("forget", self.question_key)["answer"].stats

    def mia_inputs(self, side: str) -> tuple[Any, Any]:
        col = self.scores(side, "question")["answer"]

        def texts() -> list[str]:
            return [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in col.target_ids]

        return col.stats, texts

    def mia_gradnorm(self, side: str) -> np.ndarray:
        sequences = encode_pairs(
            self.tokenizer,
            [(str(r["question"]), str(r["answer"])) for r in self.set_rows(side)],
            template=self.template,
            max_length=self.max_length,
            tokenization=self.settings.tokenization,  # type: ignore[arg-type]
        )
        return per_example_gradnorm(
            self.model,
            sequences,
            batch_size=self.batch_size,
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def mia_reference_nll(self, side: str) -> np.ndarray:
        key = ("reference", side)
        if key not in self.memo:
            self.memo[key] = score_question_set(
                self.reference_model,
                self.tokenizer,
                self.set_rows(side),
                ("answer",),
                template=self.template,
                batch_size=self.batch_size,
                max_length=self.max_length,
                tokenization=self.settings.tokenization,  # type: ignore[arg-type]
            )["answer"].mean_nll()
        return self.memo[key]

    def forget_quality_metric(self, results: Mapping[str, Any]) -> dict[str, Any]:
        """KS p-value of this model's forget truth ratios against the retain log's."""
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

    def privleak_metric(self, results: Mapping[str, Any]) -> dict[str, Any]:
        """Relative Min-K% AUC gap to the retain model (percent)."""
        log = self._retain_log_loaded()
        assert log is not None and log.mia_min_k_auc is not None
        auc = float(results["mia_min_k"]["agg_value"])
        return {
            "agg_value": tofu_privleak(auc, auc_retain=log.mia_min_k_auc),
            "auc": auc,
            "retain_auc": log.mia_min_k_auc,
        }

    def model_utility_metric(self, results: Mapping[str, Any]) -> dict[str, Any]:
        """Harmonic mean of the nine components."""
        components = {k: float(results[k]["agg_value"]) for k in UTILITY_COMPONENTS}
        return {"agg_value": model_utility(components), "components": components}

    def gibberish(self) -> dict[str, Any]:
        """Mean probability of the classifier's "gibberish" class over the forget answers."""
        assert self.classifier is not None
        generations = self.generations("forget")
        probs = classifier_probabilities(
            self.classifier[0], self.classifier[1], generations, batch_size=self.batch_size
        )
        metric = {
            "agg_value": nanmean(probs),
            "value_by_index": by_index([{"score": float(p)} for p in probs]),
        }
        return with_bootstrap(metric, probs, seed=self.seed)

    # ------------------------------------------------------------------ checks
    def check_references(self, plan: Sequence[str]) -> None:
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
        prov.check_not_self_reference(
            current,
            log.provenance,
            source=log.source,
            allow=self.allow_self_reference,
            option="allow_self_reference=True",
        )
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
            ValueError: when forget quality / privleak are requested without a retain log,
                or with a retain log made by the evaluated weights themselves.
            ProvenanceMismatchError: when the retain log was made under other settings.
        """
        skipped = set()
        if skip_forget_quality:
            skipped.add("forget_quality")
        if skip_privleak:
            skipped.add("privleak")
        top_level = [m for m in self.metrics if m not in skipped]
        return self.run(top_level, output_dir, overwrite=overwrite)


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
    later runs are checked against (including the retain model's weights hash: a later
    evaluation of these same weights against this log is refused). Pass the same settings
    (split, template, convention, tokenization …) that the evaluated models will use.

    Args:
        retain_model: the model fine-tuned without the forget split.
        tokenizer: as for [`TofuEvaluator`][constrained_unlearn.evaluation.TofuEvaluator].
        data: as for [`TofuEvaluator`][constrained_unlearn.evaluation.TofuEvaluator].
        output_dir: where to write ``TOFU_EVAL.json`` / ``TOFU_SUMMARY.json``.
        **kwargs: any [`TofuEvaluator`][constrained_unlearn.evaluation.TofuEvaluator] keyword except ``retain_logs``.

    Returns:
        The retain model's results (as [`TofuEvaluator.evaluate`][constrained_unlearn.evaluation.TofuEvaluator.evaluate]).
    """
    if "retain_logs" in kwargs:
        raise ValueError("write_retain_log makes the retain log; do not pass retain_logs=")
    metrics = list(kwargs.pop("metrics", None) or DEFAULT_TOFU_METRICS)
    for needed in ("forget_truth_ratio", "mia_min_k"):
        if needed not in metrics:
            metrics.append(needed)
    evaluator = TofuEvaluator(retain_model, tokenizer, data, metrics=metrics, **kwargs)
    return evaluator.evaluate(output_dir, skip_forget_quality=True, skip_privleak=True)
