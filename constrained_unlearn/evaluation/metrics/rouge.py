"""ROUGE scores of generations against references (specification §3.3).

With LCS the longest common subsequence of the two token sequences (``rouge_score``'s tokenizer:
lower-cased alphanumeric words, optionally Porter-stemmed):

    R_1 recall = |unigram overlap (with multiplicity)| / |ref|
    R_L recall = LCS(gen, ref) / |ref|
    R_L F1     = 2·P·R / (P + R),  P = LCS / |gen|,  R = LCS / |ref|

Conventions: open-unlearning and original TOFU stem (``use_stemmer=True``); original MUSE does
not. Argument order follows ``RougeScorer.score(target=reference, prediction=generation)``.

Edge cases (documented behaviour, never a silent number):

* empty generation (no token after tokenisation) with a non-empty reference: every score is 0
  (nothing of the reference was reproduced);
* reference with no token: every score is NaN and a ``RuntimeWarning`` names the example; a mean
  over a list holding it is NaN too, so the bad reference cannot go unnoticed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from constrained_unlearn.evaluation.metrics._validation import same_length


@dataclass(frozen=True)
class RougeScores:
    """ROUGE of one generation against one reference (NaN when the reference is empty)."""

    rouge1_recall: float
    rougeL_recall: float
    rougeL_f1: float


# rouge_score pulls in nltk (seconds to import): load it on first use only.
@lru_cache(maxsize=2)
def _scorer(use_stemmer: bool) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=use_stemmer)


@lru_cache(maxsize=2)
def _tokenizer(use_stemmer: bool) -> Any:
    from rouge_score import tokenizers

    return tokenizers.DefaultTokenizer(use_stemmer=use_stemmer)


def rouge_scores(
    generations: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True
) -> list[RougeScores]:
    """ROUGE-1 recall, ROUGE-L recall and ROUGE-L F1 of each generation against its reference.

    Args:
        generations: N decoded generations (already cut at EOS / stop strings and stripped).
        references: N reference answers.
        use_stemmer: Porter stemming (True for open-unlearning / original TOFU, False for
            original MUSE).

    Returns:
        N :class:`RougeScores`; see the module docstring for empty inputs.
    """
    same_length(generations, references, "generations", "references")
    scorer = _scorer(use_stemmer)
    tokenizer = _tokenizer(use_stemmer)
    out: list[RougeScores] = []
    empty: list[int] = []
    for i, (gen, ref) in enumerate(zip(generations, references)):
        if not isinstance(gen, str) or not isinstance(ref, str):
            raise TypeError(
                f"generations[{i}] and references[{i}] must be str; got "
                f"{type(gen).__name__} and {type(ref).__name__} (decode token ids first)"
            )
        if not tokenizer.tokenize(ref):
            empty.append(i)
            out.append(RougeScores(math.nan, math.nan, math.nan))
            continue
        scores = scorer.score(ref, gen)
        out.append(
            RougeScores(
                rouge1_recall=float(scores["rouge1"].recall),
                rougeL_recall=float(scores["rougeL"].recall),
                rougeL_f1=float(scores["rougeL"].fmeasure),
            )
        )
    if empty:
        shown = ", ".join(str(i) for i in empty[:10])
        warnings.warn(
            f"{len(empty)} reference(s) have no token after ROUGE tokenisation (indices {shown}"
            f"{', …' if len(empty) > 10 else ''}); their ROUGE is NaN. Fix or drop those rows.",
            RuntimeWarning,
            stacklevel=2,
        )
    return out


def rouge_l_f1(
    generations: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True
) -> np.ndarray:
    """``[N]`` ROUGE-L F1 of each generation against its reference (NaN for empty references)."""
    return np.array(
        [s.rougeL_f1 for s in rouge_scores(generations, references, use_stemmer=use_stemmer)],
        dtype=np.float64,
    )


def rouge_l_recall(
    generations: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True
) -> np.ndarray:
    """``[N]`` ROUGE-L recall (TOFU's reported ROUGE; NaN for empty references)."""
    return np.array(
        [s.rougeL_recall for s in rouge_scores(generations, references, use_stemmer=use_stemmer)],
        dtype=np.float64,
    )
