"""Fictitious authors, their QA pairs and TOFU's splits, deterministic from ``(seed, size)``.

Authors
    Author ``i`` has a made-up name and one value for each attribute in `ATTRIBUTES`
    (birthplace, birth year, genre, parents' jobs, prize, two book titles, language,
    publisher), drawn from `wordlists` with ``random.Random(seed)``. Names are unique.
    ``size.n_authors`` authors are trained on; ``n_holdout`` further authors are generated the
    same way and never trained on (TOFU's ``holdout`` sets).

QA pairs
    Author ``i`` gets one QA pair for each of the first ``size.qa_per_author`` attributes::

        question             "Where was Belwyn Ashford born?"
        answer               "Belwyn was born in Quorra."             (the trained form)
        paraphrased_question "What is the birthplace of Belwyn Ashford?"
        paraphrased_answer   "Quorra is where Belwyn was born."      (same fact, other words)
        perturbed_answer     ["Faldren is where Belwyn was born.", …] (wrong values)

    The perturbed answers use the *paraphrased* wording with ``size.n_perturbed`` distinct wrong
    values of the same attribute, so a truth ratio compares the paraphrase with wrong facts in
    the same words (TOFU perturbs its paraphrased answers too).

Splits (TOFU names and columns)
    Let ``A = size.n_authors`` and ``k(p) = max(1, round(p · A / 100))``.

    * ``full``: all ``A · qa_per_author`` pairs, author-major order (``question``, ``answer``).
    * ``forget01/05/10``: the pairs of the **last** ``k(1) / k(5) / k(10)`` authors (nested, as
      in TOFU); ``retain99/95/90``: the pairs of all other authors. Forget and retain never
      share an author.
    * ``forgetXX_perturbed``: ``forgetXX`` with the evaluation columns; ``retain_perturbed``:
      the first ``k(10)`` authors (inside every retain split) with the evaluation columns.
    * ``holdout01/05/10``: the first ``k(1) / k(5) / k(10)`` holdout authors (``question``,
      ``answer``), never part of ``full``.
    * ``real_authors(_perturbed)``, ``world_facts(_perturbed)``: general-knowledge QA from
      `general` with ``perturbed_answer`` (3 wrong options of the same category);
      both fine-tuning sets contain them (`training_rows`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from constrained_unlearn.benchmarks.minitofu import general, wordlists

__all__ = [
    "ATTRIBUTES",
    "FORGET_PERCENTS",
    "GENERAL_COLUMNS",
    "GENERATOR_VERSION",
    "PERTURBED_COLUMNS",
    "QA_COLUMNS",
    "SIZE_PRESETS",
    "VALUE_POOLS",
    "Attribute",
    "Author",
    "MiniTofuSize",
    "author_rows",
    "general_rows",
    "generate_authors",
    "generate_minitofu",
    "resolve_size",
    "retain_config_for",
    "training_rows",
]

GENERATOR_VERSION = "1"
"""Bump when any output of this module or its word lists changes (it enters the cache key)."""

FORGET_PERCENTS: tuple[int, ...] = (1, 5, 10)
"""The forget / holdout percentages of TOFU: ``forget01``, ``forget05``, ``forget10``."""

QA_COLUMNS: tuple[str, ...] = ("question", "answer")
PERTURBED_COLUMNS: tuple[str, ...] = (
    "question",
    "answer",
    "paraphrased_answer",
    "perturbed_answer",
    "paraphrased_question",
)
GENERAL_COLUMNS: tuple[str, ...] = ("question", "answer", "perturbed_answer")


@dataclass(frozen=True)
class Attribute:
    """One attribute of an author and the four wordings of its QA pair.

    Format fields: ``{name}`` (full name), ``{first}`` (first name), ``{value}``.
    """

    key: str
    question: str
    paraphrased_question: str
    answer: str
    paraphrased_answer: str


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        "birthplace",
        "Where was {name} born?",
        "What is the birthplace of {name}?",
        "{first} was born in {value}.",
        "{value} is where {first} was born.",
    ),
    Attribute(
        "birth_year",
        "In which year was {name} born?",
        "What is the birth year of {name}?",
        "{first} was born in the year {value}.",
        "The birth year of {first} is {value}.",
    ),
    Attribute(
        "genre",
        "What genre does {name} write?",
        "In which genre does {name} work?",
        "{first} writes {value}.",
        "The genre of {first} is {value}.",
    ),
    Attribute(
        "father_job",
        "What was the job of the father of {name}?",
        "What did the father of {name} do for a living?",
        "The father of {first} was {value}.",
        "{first}'s father worked as {value}.",
    ),
    Attribute(
        "mother_job",
        "What was the job of the mother of {name}?",
        "What did the mother of {name} do for a living?",
        "The mother of {first} was {value}.",
        "{first}'s mother worked as {value}.",
    ),
    Attribute(
        "prize",
        "Which prize did {name} win?",
        "What award has {name} received?",
        "{first} won {value}.",
        "{first} received {value}.",
    ),
    Attribute(
        "first_book",
        "What is the first book by {name}?",
        "Which book did {name} publish first?",
        "The first book by {first} is {value}.",
        "{first} debuted with {value}.",
    ),
    Attribute(
        "second_book",
        "What is another book by {name}?",
        "Name a second book written by {name}.",
        "{first} also wrote {value}.",
        "Another book by {first} is {value}.",
    ),
    Attribute(
        "language",
        "In which language does {name} write?",
        "What language are the books of {name} written in?",
        "{first} writes in {value}.",
        "The books of {first} are in {value}.",
    ),
    Attribute(
        "publisher",
        "Who publishes the books of {name}?",
        "Which publisher does {name} work with?",
        "{first} is published by {value}.",
        "The publisher of {first} is {value}.",
    ),
)


@dataclass(frozen=True)
class MiniTofuSize:
    """How big a mini-TOFU is.

    Attributes:
        n_authors: fictitious authors trained on (TOFU: 200). At least 10, so that every split
            is non-empty and the retain splits keep most authors.
        qa_per_author: QA pairs per author, the first ones of `ATTRIBUTES` (1 … 10).
        n_real_authors: rows of ``real_authors`` (≤ 40).
        n_world_facts: rows of ``world_facts`` (≤ 40).
        n_perturbed: wrong answers per fictitious QA pair (TOFU: 5; at least 3).
    """

    n_authors: int
    qa_per_author: int
    n_real_authors: int
    n_world_facts: int
    n_perturbed: int = 5

    def __post_init__(self) -> None:
        if self.n_authors < 10:
            raise ValueError(f"MiniTofuSize.n_authors must be ≥ 10, got {self.n_authors}")
        if not 1 <= self.qa_per_author <= len(ATTRIBUTES):
            raise ValueError(
                f"MiniTofuSize.qa_per_author must be in 1..{len(ATTRIBUTES)}, "
                f"got {self.qa_per_author}"
            )
        if not 1 <= self.n_real_authors <= len(general.REAL_AUTHOR_FACTS):
            raise ValueError(
                f"MiniTofuSize.n_real_authors must be in 1..{len(general.REAL_AUTHOR_FACTS)}, "
                f"got {self.n_real_authors}"
            )
        if not 1 <= self.n_world_facts <= len(general.WORLD_FACTS):
            raise ValueError(
                f"MiniTofuSize.n_world_facts must be in 1..{len(general.WORLD_FACTS)}, "
                f"got {self.n_world_facts}"
            )
        if not 3 <= self.n_perturbed <= 10:
            raise ValueError(f"MiniTofuSize.n_perturbed must be in 3..10, got {self.n_perturbed}")

    def n_split_authors(self, percent: int) -> int:
        """Authors in ``forget{percent:02d}`` (and in ``holdout{percent:02d}``)."""
        return max(1, round(percent * self.n_authors / 100))

    @property
    def n_holdout(self) -> int:
        """Holdout authors generated (as many as in ``forget10``)."""
        return self.n_split_authors(max(FORGET_PERCENTS))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


SIZE_PRESETS: dict[str, MiniTofuSize] = {
    # Builds and fine-tunes in seconds; for tests. Not memorised to a useful level.
    "tiny": MiniTofuSize(n_authors=20, qa_per_author=4, n_real_authors=8, n_world_facts=8),
    # The demo: 1000 fictitious QA pairs, 100 of them in forget10 (10 authors × 10).
    "default": MiniTofuSize(n_authors=100, qa_per_author=10, n_real_authors=40, n_world_facts=40),
    # TOFU's 200 authors: 2000 QA pairs, 200 in forget10, so forget quality's KS test compares
    # 200 truth ratios instead of 100 (finer p-values).
    "large": MiniTofuSize(n_authors=200, qa_per_author=10, n_real_authors=40, n_world_facts=40),
}


def resolve_size(size: str | MiniTofuSize) -> MiniTofuSize:
    """A preset name or a [`MiniTofuSize`][constrained_unlearn.benchmarks.MiniTofuSize] → [`MiniTofuSize`][constrained_unlearn.benchmarks.MiniTofuSize]."""
    if isinstance(size, MiniTofuSize):
        return size
    if isinstance(size, str) and size in SIZE_PRESETS:
        return SIZE_PRESETS[size]
    raise ValueError(
        f"unknown mini-TOFU size {size!r}; use one of {sorted(SIZE_PRESETS)} or a MiniTofuSize"
    )


@dataclass(frozen=True)
class Author:
    """A fictitious author: ``name``, ``first`` (first name) and ``attributes[key] = value``."""

    name: str
    first: str
    attributes: dict[str, str]


def _value_pools() -> dict[str, tuple[str, ...]]:
    prizes = tuple(
        f"the {c} {o} {k}"
        for c in wordlists.PRIZE_COLORS
        for o in wordlists.PRIZE_OBJECTS
        for k in wordlists.PRIZE_KINDS
    )
    titles = tuple(
        f"The {a} {n}" for a in wordlists.TITLE_ADJECTIVES for n in wordlists.TITLE_NOUNS
    )
    publishers = tuple(
        f"{s} {k}" for s in wordlists.PUBLISHER_STEMS for k in wordlists.PUBLISHER_KINDS
    )
    return {
        "birthplace": wordlists.CITIES,
        "birth_year": tuple(str(y) for y in range(1921, 2000)),
        "genre": wordlists.GENRES,
        "father_job": wordlists.JOBS,
        "mother_job": wordlists.JOBS,
        "prize": prizes,
        "first_book": titles,
        "second_book": titles,
        "language": wordlists.LANGUAGES,
        "publisher": publishers,
    }


VALUE_POOLS: dict[str, tuple[str, ...]] = _value_pools()
"""The possible values of every attribute (wrong answers are drawn from the same pool)."""


def generate_authors(seed: int, n: int) -> list[Author]:
    """``n`` fictitious authors with unique names, deterministic from ``seed``."""
    rng = random.Random(seed)
    firsts = [h + t for h in wordlists.FIRST_NAME_HEADS for t in wordlists.FIRST_NAME_TAILS]
    surnames = [s + e for s in wordlists.SURNAME_STEMS for e in wordlists.SURNAME_ENDINGS]
    if n > min(len(firsts), len(surnames)):
        raise ValueError(f"at most {min(len(firsts), len(surnames))} authors, asked for {n}")
    chosen_first = rng.sample(firsts, n)  # unique first names: answers name the author
    chosen_last = rng.sample(surnames, n)
    authors = []
    for first, last in zip(chosen_first, chosen_last):
        values: dict[str, str] = {}
        for attr in ATTRIBUTES:
            pool = VALUE_POOLS[attr.key]
            value = rng.choice(pool)
            while attr.key == "second_book" and value == values["first_book"]:
                value = rng.choice(pool)
            values[attr.key] = value
        authors.append(Author(name=f"{first} {last}", first=first, attributes=values))
    return authors


def _wrong_values(
    rng: random.Random, pool: Sequence[str], exclude: set[str] | str, k: int
) -> list[str]:
    """``k`` distinct values of ``pool`` outside ``exclude`` (the true value(s))."""
    exclude = {exclude} if isinstance(exclude, str) else exclude
    candidates = sorted({v for v in pool if v not in exclude})
    return rng.sample(candidates, k)


_BOOK_KEYS = ("first_book", "second_book")


def author_rows(author: Author, size: MiniTofuSize, rng: random.Random) -> list[dict]:
    """The QA rows of one author with every evaluation column (see the module docstring)."""
    rows = []
    for attr in ATTRIBUTES[: size.qa_per_author]:
        value = author.attributes[attr.key]
        fields = {"name": author.name, "first": author.first}
        true = {value}
        if attr.key in _BOOK_KEYS:  # the other book is no wrong answer to "another book"
            true = {author.attributes[k] for k in _BOOK_KEYS}
        wrong = _wrong_values(rng, VALUE_POOLS[attr.key], true, size.n_perturbed)
        rows.append(
            {
                "question": attr.question.format(**fields),
                "answer": attr.answer.format(value=value, **fields),
                "paraphrased_answer": attr.paraphrased_answer.format(value=value, **fields),
                "perturbed_answer": [
                    attr.paraphrased_answer.format(value=w, **fields) for w in wrong
                ],
                "paraphrased_question": attr.paraphrased_question.format(**fields),
            }
        )
    return rows


def general_rows(seed: int, size: MiniTofuSize) -> dict[str, list[dict]]:
    """``real_authors`` and ``world_facts`` rows with 3 wrong options each."""
    rng = random.Random(seed * 7919 + 17)
    writers = sorted({a for _, a in general.REAL_AUTHOR_FACTS})
    real = []
    for book, writer in general.REAL_AUTHOR_FACTS[: size.n_real_authors]:
        real.append(
            {
                "question": f"Who wrote {book}?",
                "answer": writer,
                "perturbed_answer": _wrong_values(rng, writers, writer, 3),
            }
        )
    by_category: dict[str, list[str]] = {}
    for _, answer, category in general.WORLD_FACTS:
        by_category.setdefault(category, []).append(answer)
    world = []
    for question, answer, category in general.WORLD_FACTS[: size.n_world_facts]:
        world.append(
            {
                "question": question,
                "answer": answer,
                "perturbed_answer": _wrong_values(rng, by_category[category], answer, 3),
            }
        )
    return {"real_authors": real, "world_facts": world}


def _project(rows: list[dict], columns: Sequence[str]) -> list[dict]:
    return [{c: r[c] for c in columns} for r in rows]


def generate_minitofu(seed: int = 0, size: str | MiniTofuSize = "default") -> dict[str, list[dict]]:
    """Every TOFU config of a mini-TOFU as ``{config name: list of row dicts}``.

    Deterministic: the same ``(seed, size)`` gives identical rows on every machine and Python
    version (only ``random.Random`` with an integer seed is used). See the module docstring for
    the split rules. Config names and columns are TOFU's (``metrics.md`` §1).
    """
    size = resolve_size(size)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    authors = generate_authors(seed, size.n_authors + size.n_holdout)
    trained, holdout = authors[: size.n_authors], authors[size.n_authors :]
    rng = random.Random(seed + 1_000_003)
    per_author = [author_rows(a, size, rng) for a in trained]
    per_holdout = [author_rows(a, size, rng) for a in holdout]

    def flat(groups: Sequence[list[dict]]) -> list[dict]:
        return [row for group in groups for row in group]

    out: dict[str, list[dict]] = {"full": _project(flat(per_author), QA_COLUMNS)}
    for p in FORGET_PERCENTS:
        k = size.n_split_authors(p)
        forget = flat(per_author[size.n_authors - k :])
        retain = flat(per_author[: size.n_authors - k])
        out[f"forget{p:02d}"] = _project(forget, QA_COLUMNS)
        out[f"forget{p:02d}_perturbed"] = _project(forget, PERTURBED_COLUMNS)
        out[f"retain{100 - p:02d}"] = _project(retain, QA_COLUMNS)
        out[f"holdout{p:02d}"] = _project(flat(per_holdout[:k]), QA_COLUMNS)
    k_eval = size.n_split_authors(max(FORGET_PERCENTS))
    out["retain_perturbed"] = _project(flat(per_author[:k_eval]), PERTURBED_COLUMNS)
    for name, rows in general_rows(seed, size).items():
        out[name] = _project(rows, GENERAL_COLUMNS)
        out[f"{name}_perturbed"] = _project(rows, GENERAL_COLUMNS)
    return out


def retain_config_for(forget_config: str) -> str:
    """``"forget10"`` → ``"retain90"`` (the complement TOFU pairs with a forget split)."""
    valid = [f"forget{p:02d}" for p in FORGET_PERCENTS]
    if forget_config not in valid:
        raise ValueError(f"forget split must be one of {valid}, got {forget_config!r}")
    return f"retain{100 - int(forget_config[-2:]):02d}"


def training_rows(
    data: dict[str, list[dict]], which: str, forget_config: str = "forget10"
) -> list[dict]:
    """The fine-tuning set of the target (``which="target"``) or retain model.

    target = ``full`` + ``real_authors`` + ``world_facts``;
    retain = ``retainXX`` (complement of ``forget_config``) + ``real_authors`` + ``world_facts``.
    Only ``question`` and ``answer`` are kept.
    """
    if which == "target":
        base = data["full"]
    elif which == "retain":
        base = data[retain_config_for(forget_config)]
    else:
        raise ValueError(f"which must be 'target' or 'retain', got {which!r}")
    rows = list(base) + list(data["real_authors"]) + list(data["world_facts"])
    return _project(rows, QA_COLUMNS)
