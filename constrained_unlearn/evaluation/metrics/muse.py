"""MUSE metrics: VerbMem, KnowMem and PrivLeak (specification §4.2–§4.4, §4.7).

VerbMem (no verbatim memorisation), D = ``verbmem/forget`` prompts x with true continuations g:

    VerbMem = (1/|D|) Σ_{(x, g) ∈ D} ROUGE-L F1(f_greedy^{128}(x), g)

  open-unlearning: stemming, the whole stored continuation as reference;
  muse-original:   no stemming, the reference cut to its first 128 tokenizer ids (BOS included,
                   so 127 content tokens for Llama) and decoded with special tokens skipped.

KnowMem (no knowledge memorisation / utility preservation): a 10-shot prompt

    "Question: q_1\\nAnswer: a_1\\n\\n" … "Question: q\\nAnswer: "

greedy 32 tokens, the output cut at the first of "\\n\\n", "\\nQuestion", "Question:", then
ROUGE-L F1 against the gold answer, averaged.

PrivLeak, with Min-K% (k = 0.4) forget-vs-holdout AUCs in MUSE's orientation
(AUC^MUSE = 1 − AUC^OU, → 0 when memorised):

    PrivLeak = (AUC^MUSE(f_unl) − AUC^MUSE(f_retrain)) / AUC^MUSE(f_retrain) × 100

Original retrain constants (MUSE orientation): News 0.4772, Books 0.5393.

All scores are returned in [0, 1] (PrivLeak in percent); original MUSE tables multiply by 100
(``ConventionSettings.score_scale``). Empty generations score 0; empty references give NaN with a
warning (see ``rouge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np

from constrained_unlearn.evaluation.metrics._validation import probability, same_length
from constrained_unlearn.evaluation.metrics.conventions import (
    Convention,
    ConventionSettings,
    convention_settings,
)
from constrained_unlearn.evaluation.metrics.rouge import rouge_l_f1

__all__ = [
    "KNOWMEM_STOP_STRINGS",
    "MUSE_RETRAIN_MIN_K_AUC",
    "TokenizerLike",
    "build_knowmem_prompt",
    "cut_knowmem_answer",
    "knowmem_scores",
    "muse_privleak",
    "truncate_reference",
    "verbmem_scores",
]

KNOWMEM_STOP_STRINGS: tuple[str, ...] = ("\n\n", "\nQuestion", "Question:")
MUSE_RETRAIN_MIN_K_AUC: dict[str, float] = {"news": 0.4772, "books": 0.5393}
"""Retrain-model Min-40% forget-vs-holdout AUCs of original MUSE (MUSE orientation)."""


class TokenizerLike(Protocol):
    """What VerbMem's muse-original reference cut needs (a Hugging Face tokenizer fits)."""

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, special tokens (BOS) included."""
        ...

    def decode(self, token_ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of ``token_ids``."""
        ...


def truncate_reference(reference: str, tokenizer: TokenizerLike, max_tokens: int = 128) -> str:
    """Original MUSE's VerbMem reference: the first ``max_tokens`` ids of
    ``tokenizer.encode(reference)`` (BOS counts), decoded with special tokens skipped."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens = {max_tokens} must be ≥ 1")
    ids = list(tokenizer.encode(reference))[:max_tokens]
    return tokenizer.decode(ids, skip_special_tokens=True)


def verbmem_scores(
    generations: Sequence[str],
    references: Sequence[str],
    *,
    convention: Convention | str = Convention.OPEN_UNLEARNING,
    tokenizer: TokenizerLike | None = None,
) -> np.ndarray:
    """Per-example VerbMem ROUGE-L F1; the split score is the mean.

    Args:
        generations: N greedy continuations (new tokens only, decoded).
        references: N stored true continuations ``gt``.
        convention: ``"open-unlearning"`` (stemming, whole reference) or ``"muse-original"``
            (no stemming, reference cut to 128 tokens); ``"tofu-original"`` is not a MUSE
            convention and is refused.
        tokenizer: required under ``"muse-original"`` to cut the reference.

    Returns:
        ``[N]`` float64 in [0, 1] (NaN for an empty reference, with a warning).
    """
    conv, settings = _muse_convention(convention)
    same_length(generations, references, "generations", "references")
    refs = list(references)
    if settings.verbmem_reference_max_tokens is not None:
        if tokenizer is None:
            raise ValueError(
                f"convention={conv.value!r} cuts each reference to its first "
                f"{settings.verbmem_reference_max_tokens} tokens: pass tokenizer= (the "
                "evaluated model's tokenizer)"
            )
        refs = [
            truncate_reference(r, tokenizer, settings.verbmem_reference_max_tokens) for r in refs
        ]
    return rouge_l_f1(list(generations), refs, use_stemmer=settings.rouge_use_stemmer)


def build_knowmem_prompt(question: str, icl_pairs: Sequence[tuple[str, str]]) -> str:
    """Few-shot KnowMem prompt: ``"Question: q_i\\nAnswer: a_i\\n\\n"`` per in-context pair,
    then ``"Question: {question}\\nAnswer: "``. MUSE uses the 10 ``*_qa_icl`` pairs."""
    parts = []
    for i, pair in enumerate(icl_pairs):
        if len(pair) != 2:
            raise ValueError(f"icl_pairs[{i}] must be a (question, answer) pair; got {pair!r}")
        q, a = pair
        parts.append(f"Question: {q}\nAnswer: {a}\n\n")
    parts.append(f"Question: {question}\nAnswer: ")
    return "".join(parts)


def cut_knowmem_answer(generation: str) -> str:
    """Cut a KnowMem generation at the earliest of "\\n\\n", "\\nQuestion", "Question:" and
    strip surrounding whitespace."""
    cut = len(generation)
    for stop in KNOWMEM_STOP_STRINGS:
        position = generation.find(stop)
        if position != -1:
            cut = min(cut, position)
    return generation[:cut].strip()


def knowmem_scores(
    generations: Sequence[str],
    answers: Sequence[str],
    *,
    convention: Convention | str = Convention.OPEN_UNLEARNING,
) -> np.ndarray:
    """Per-question KnowMem ROUGE-L F1 of the cut generation against the gold answer.

    Args:
        generations: N raw greedy generations (new tokens only, decoded).
        answers: N gold answers.
        convention: sets stemming (open-unlearning on, muse-original off).

    Returns:
        ``[N]`` float64 in [0, 1]; the split score is the mean.
    """
    _, settings = _muse_convention(convention)
    same_length(generations, answers, "generations", "answers")
    cut = [cut_knowmem_answer(g) for g in generations]
    return rouge_l_f1(cut, list(answers), use_stemmer=settings.rouge_use_stemmer)


def muse_privleak(
    auc_unlearned: float,
    *,
    auc_retrain: float,
    orientation: Literal["open-unlearning", "muse-original"],
) -> float:
    """MUSE PrivLeak in percent (see the module docstring).

    Args:
        auc_unlearned: Min-K% (k = 0.4) forget-vs-holdout AUC of the evaluated model.
        auc_retrain: the same AUC of the retrained model (e.g. ``MUSE_RETRAIN_MIN_K_AUC``).
        orientation: how both AUCs are oriented: ``"open-unlearning"`` (→ 1 when memorised;
            flipped here) or ``"muse-original"`` (→ 0 when memorised; used as is).

    Raises:
        ValueError: on an AUC outside [0, 1], a retrain AUC of 0, or an unknown orientation.
    """
    unl = probability(auc_unlearned, "auc_unlearned")
    ret = probability(auc_retrain, "auc_retrain")
    if orientation == "open-unlearning":
        unl, ret = 1.0 - unl, 1.0 - ret
    elif orientation != "muse-original":
        raise ValueError(
            f"orientation={orientation!r} is not known; use 'open-unlearning' or 'muse-original'"
        )
    if ret == 0:
        raise ValueError("the retrain AUC in MUSE orientation is 0: PrivLeak is undefined")
    return (unl - ret) / ret * 100.0


def _muse_convention(convention: Convention | str) -> tuple[Convention, ConventionSettings]:
    settings = convention_settings(convention)
    conv = Convention(settings.convention)
    if conv is Convention.TOFU_ORIGINAL:
        raise ValueError(
            "convention='tofu-original' does not define MUSE metrics; use 'open-unlearning' "
            "or 'muse-original'"
        )
    return conv, settings
