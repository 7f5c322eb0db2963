"""Does a model reproduce its answers? Greedy generation scored by ROUGE-L recall.

For each QA row the model continues the prompt greedily (batched, left padding) and the
generated answer ``ĝ`` is compared with the reference answer ``a``:

    ROUGE-L recall(a, ĝ) = LCS(a, ĝ) / |a|        (tokens of ``rouge_score``, Porter stemming)
    exact match          = [strip(ĝ) == strip(a)]

both averaged over the rows. This is the check that mini-TOFU's target model has memorised the
forget set (recall ≥ 0.9) and that the retain model has not. It is a build-time diagnostic, not
the evaluation layer's TOFU metric (which follows metrics.md §3.3 and its conventions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from constrained_unlearn.llm.collate import pad_collate
from constrained_unlearn.llm.tokenization import PromptTemplate, encode_prompt

__all__ = ["greedy_answers", "memorization_scores"]


@torch.no_grad()
def greedy_answers(
    model: Any,
    tokenizer: Any,
    questions: Sequence[str],
    *,
    template: PromptTemplate | None = None,
    max_new_tokens: int = 32,
    batch_size: int = 128,
) -> list[str]:
    """Greedy continuations of the formatted ``questions``, decoded without special tokens."""
    template = template if template is not None else PromptTemplate()
    prompts = [
        encode_prompt(
            tokenizer,
            template.format_prompt(tokenizer, q),
            add_special_tokens=template.adds_special_tokens,
        )
        for q in questions
    ]
    was_training = model.training
    model.eval()
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        batch = pad_collate(
            [{"input_ids": p} for p in prompts[i : i + batch_size]],
            tokenizer.pad_token_id,
            side="left",
        )
        generated = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        out.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    model.train(was_training)
    return [s.strip() for s in out]


def memorization_scores(
    model: Any,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    template: PromptTemplate | None = None,
    max_new_tokens: int = 32,
) -> dict[str, float]:
    """``{"rougeL_recall": …, "exact_match": …, "n": …}`` of greedy answers on ``rows``."""
    from rouge_score import rouge_scorer

    if len(rows) == 0:
        raise ValueError("rows is empty: nothing to score")
    answers = greedy_answers(
        model,
        tokenizer,
        [str(r["question"]) for r in rows],
        template=template,
        max_new_tokens=max_new_tokens,
    )
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    recall = [scorer.score(str(r["answer"]), g)["rougeL"].recall for r, g in zip(rows, answers)]
    exact = [g == str(r["answer"]).strip() for r, g in zip(rows, answers)]
    return {
        "rougeL_recall": sum(recall) / len(rows),
        "exact_match": sum(exact) / len(rows),
        "n": float(len(rows)),
    }
