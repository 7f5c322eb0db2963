"""Which published codebase a number is comparable to, and the settings that implies.

Three conventions exist (see the evaluation specification, sections 3.3, 3.5, 3.7 and 4.7):

* ``"open-unlearning"`` (OU, locuslab/open-unlearning): ROUGE with stemming, whole VerbMem
  reference, extraction strength with OU's 1/T' floor quirk, all rows of every split, metrics in
  [0, 1], MIA texts truncated at 2048 tokens, AUC oriented "→ 1 when memorised".
* ``"tofu-original"`` (locuslab/tofu): ROUGE with stemming, only the first 300 rows of every
  split, ``max_length=200`` *total* (prompt included) for generation. Extraction strength did
  not exist there; we use the exact formula (no quirk).
* ``"muse-original"`` (swj0419/muse_bench): ROUGE without stemming, VerbMem reference cut to its
  first 128 tokens (BOS included), metrics reported ×100, MIA on whole texts, AUC oriented
  "→ 0 when memorised".

The metric functions always return the unscaled value in [0, 1]; ``score_scale`` says what a
report multiplies by to match the convention's tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

__all__ = ["Convention", "ConventionSettings", "convention_settings", "parse_convention"]


class Convention(str, Enum):
    """The codebase whose numbers a report is comparable to."""

    OPEN_UNLEARNING = "open-unlearning"
    TOFU_ORIGINAL = "tofu-original"
    MUSE_ORIGINAL = "muse-original"


@dataclass(frozen=True)
class ConventionSettings:
    """Settings implied by a [`Convention`][constrained_unlearn.evaluation.metrics.Convention]; record ``to_dict()`` in every report.

    Attributes:
        convention: the convention's string value.
        rouge_use_stemmer: Porter stemming in ``rouge_score``.
        verbmem_reference_max_tokens: cut the VerbMem reference to this many tokenizer ids
            (BOS included) before scoring; ``None`` keeps the whole reference.
        es_ou_quirk: extraction strength reports 1/T' instead of 0 when no suffix matches.
        max_questions: evaluate only the first N rows of a split (``None``: all rows).
        generation_length_includes_prompt: the 200-token generation budget counts the prompt.
        mia_max_tokens: truncate MIA texts to this many tokens (``None``: whole text).
        auc_memorized_high: AUC orientation; True: → 1 when the forget set is memorised (OU),
            False: → 0 (original MUSE, i.e. 1 − AUC_OU).
        score_scale: multiply [0, 1] metrics by this in reports (100 for original MUSE).
        tokenization: how a teacher-forced (prompt, answer) pair is tokenised: ``"joint"``
            (one string, the first ``len(tokenize(prompt))`` ids masked: open-unlearning, the
            original TOFU and MUSE code) or ``"separate"`` (prompt and answer tokenised apart:
            the library's own training encoding). Every published convention is ``"joint"``;
            an evaluator's ``tokenization=`` overrides it (and the report records it).
    """

    convention: str
    rouge_use_stemmer: bool
    verbmem_reference_max_tokens: int | None
    es_ou_quirk: bool
    max_questions: int | None
    generation_length_includes_prompt: bool
    mia_max_tokens: int | None
    auc_memorized_high: bool
    score_scale: float
    tokenization: str = "joint"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict copy for JSON reports."""
        return asdict(self)


_SETTINGS: dict[Convention, ConventionSettings] = {
    Convention.OPEN_UNLEARNING: ConventionSettings(
        convention=Convention.OPEN_UNLEARNING.value,
        rouge_use_stemmer=True,
        verbmem_reference_max_tokens=None,
        es_ou_quirk=True,
        max_questions=None,
        generation_length_includes_prompt=False,
        mia_max_tokens=2048,
        auc_memorized_high=True,
        score_scale=1.0,
    ),
    Convention.TOFU_ORIGINAL: ConventionSettings(
        convention=Convention.TOFU_ORIGINAL.value,
        rouge_use_stemmer=True,
        verbmem_reference_max_tokens=None,
        es_ou_quirk=False,
        max_questions=300,
        generation_length_includes_prompt=True,
        mia_max_tokens=None,
        auc_memorized_high=True,
        score_scale=1.0,
    ),
    Convention.MUSE_ORIGINAL: ConventionSettings(
        convention=Convention.MUSE_ORIGINAL.value,
        rouge_use_stemmer=False,
        verbmem_reference_max_tokens=128,
        es_ou_quirk=False,
        max_questions=None,
        generation_length_includes_prompt=False,
        mia_max_tokens=None,
        auc_memorized_high=False,
        score_scale=100.0,
    ),
}


def parse_convention(convention: Convention | str) -> Convention:
    """Turn ``"open-unlearning"`` / ``"tofu-original"`` / ``"muse-original"`` into the enum.

    Raises:
        ValueError: naming the accepted values when ``convention`` is none of them.
    """
    if isinstance(convention, Convention):
        return convention
    try:
        return Convention(convention)
    except ValueError:
        accepted = ", ".join(repr(c.value) for c in Convention)
        raise ValueError(
            f"convention={convention!r} is not known; pass one of {accepted}"
        ) from None


def convention_settings(convention: Convention | str) -> ConventionSettings:
    """The settings a convention implies (see [`ConventionSettings`][constrained_unlearn.evaluation.metrics.ConventionSettings])."""
    return _SETTINGS[parse_convention(convention)]
