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

import contextlib
import importlib.util
import math
import os
import sys
import types
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from constrained_unlearn.evaluation.metrics._validation import same_length

__all__ = ["RougeScores", "rouge_l_f1", "rouge_l_recall", "rouge_scores"]


@dataclass(frozen=True)
class RougeScores:
    """ROUGE of one generation against one reference (NaN when the reference is empty)."""

    rouge1_recall: float
    rougeL_recall: float
    rougeL_f1: float


@contextlib.contextmanager
def _porter_only_nltk() -> Iterator[None]:
    """While active, ``import nltk`` yields a bare package that loads submodules on demand.

    ``rouge_score`` imports the whole of nltk (its ``__init__`` pulls in scipy.stats, the
    classifiers, the parsers …: more than importing torch) but uses only
    ``nltk.stem.porter.PorterStemmer`` for ROUGE-1/ROUGE-L (``nltk.sent_tokenize`` serves only
    ROUGE-Lsum, not computed here). Inside this context the real ``porter.py`` (and the two
    small modules it imports) run from nltk's own folder, nothing else; afterwards every
    ``nltk`` entry is removed from ``sys.modules`` again, so a later ``import nltk`` anywhere
    gets the full, real package. When nltk is already imported, nothing is done.
    """
    if "nltk" in sys.modules:
        yield
        return
    spec = importlib.util.find_spec("nltk")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        yield
        return
    package = types.ModuleType("nltk")
    package.__path__ = locations
    stem = types.ModuleType("nltk.stem")
    stem.__path__ = [os.path.join(locations[0], "stem")]
    package.stem = stem  # type: ignore[attr-defined]
    sys.modules["nltk"], sys.modules["nltk.stem"] = package, stem
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n == "nltk" or n.startswith("nltk.")]:
            del sys.modules[name]


# rouge_score pulls in nltk (seconds to import): load it on first use only, and only the
# Porter stemmer of it.
@lru_cache(maxsize=1)
def _rouge_modules() -> tuple[Any, Any]:
    with _porter_only_nltk():
        from rouge_score import rouge_scorer, tokenizers
    return rouge_scorer, tokenizers


@lru_cache(maxsize=2)
def _scorer(use_stemmer: bool) -> Any:
    rouge_scorer, _ = _rouge_modules()
    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=use_stemmer)


@lru_cache(maxsize=2)
def _tokenizer(use_stemmer: bool) -> Any:
    _, tokenizers = _rouge_modules()
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
        N [`RougeScores`][constrained_unlearn.evaluation.metrics.RougeScores]; see the module docstring for empty inputs.
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
