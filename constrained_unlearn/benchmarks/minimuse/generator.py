"""Fictitious news, its knowledge questions and MUSE's configs, deterministic from ``(seed, size)``.

Documents
    Every document reports one invented event of one of six kinds (`EVENT_KINDS`: a
    building project, a mayoral election, a football match, a product launch, a species
    discovery, a festival). An event is a table of facts drawn with ``random.Random(seed)``
    (towns, people, companies, numbers, a quotation); people are unique across the corpus and
    every event's subject (e.g. *the new bridge in Quillmere*) appears in one document only, so a
    fact is known exactly when its document was trained on. The text is::

        <headline>\\n\\n<lede> <sentence> <sentence> <sentence> <quotation>

    with each part written in one of several wordings and the four body sentences in a random
    order, so two documents of the same kind share little more than function words.

Knowledge questions
    Every event has four question-answer pairs about its facts ("How much will the new bridge
    in Quillmere cost?" → "37 million crowns"). Two of them (chosen at random) are KnowMem's
    test questions, the other two feed the in-context examples.

Configs (MUSE-News names and columns)
    With ``F = size.docs_per_fold``:

    * ``sust/forget_1..4``: four disjoint folds of ``F`` documents (``text``);
      ``scal/forget_k`` = folds ``1..k`` (nested, ``k·F`` documents).
    * ``raw``: ``forget`` = fold 1, ``retain1``, ``retain2``, ``holdout`` (never trained on).
    * ``train``: what the target model saw: ``forget`` = folds 1-4, ``retain1``, ``retain2``.
    * ``verbmem/forget``: ``prompt`` (headline and lede) and ``gt`` (the rest) of the
      ``raw/forget`` documents; ``prompt + " " + gt`` is the document.
    * ``knowmem``: ``forget_qa`` / ``retain_qa``: the test questions of ``raw/forget`` /
      ``raw/retain2`` (MUSE builds its retain QA from ``retain2`` too); ``*_qa_icl``: ``n_icl``
      other questions of the same documents (``question``, ``answer``).
    * ``privleak``: ``forget`` (``raw/forget``), ``retain`` (``raw/retain2``), ``holdout``
      (``raw/holdout``) documents (``text``).
    * ``train_qa`` (not in MUSE): every question of every trained document, by training split
      (``forget``, ``retain1``, ``retain2``). A model of a million parameters does not learn to
      answer questions from prose alone; the target and retrained models are trained on these
      pairs beside the documents (docs/muse.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from constrained_unlearn.benchmarks.minimuse import wordlists as W

__all__ = [
    "EVENT_KINDS",
    "GENERATOR_VERSION",
    "N_FOLDS",
    "SIZE_PRESETS",
    "EventKind",
    "Facts",
    "MiniMuseSize",
    "NewsDocument",
    "generate_documents",
    "generate_minimuse",
    "resolve_size",
]

GENERATOR_VERSION = "1"
"""Bump when any output of this module or its word lists changes (it enters the cache key)."""

N_FOLDS = 4
"""MUSE's scalability / sustainability folds."""

Facts = dict[str, str]


@dataclass(frozen=True)
class MiniMuseSize:
    """How many documents each split holds.

    Attributes:
        docs_per_fold: ``F``, documents per sustainability fold (``raw/forget`` is fold 1).
        n_retain1: documents of ``raw/retain1`` (the unlearning retain set).
        n_retain2: documents of ``raw/retain2`` (KnowMem's retain questions).
        n_holdout: documents never trained on (PrivLeak's non-members).
        knowmem_per_doc: test questions per document (≤ 4; the rest are in-context examples).
        n_icl: in-context examples per KnowMem prompt (MUSE: 10).
    """

    docs_per_fold: int = 20
    n_retain1: int = 40
    n_retain2: int = 40
    n_holdout: int = 40
    knowmem_per_doc: int = 2
    n_icl: int = 10

    def __post_init__(self) -> None:
        for key in ("docs_per_fold", "n_retain1", "n_retain2", "n_holdout"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MiniMuseSize.{key} must be an integer ≥ 1, got {value!r}")
        if not 1 <= self.knowmem_per_doc <= 3:
            raise ValueError(
                f"MiniMuseSize.knowmem_per_doc must be 1, 2 or 3 (each event has 4 questions "
                f"and at least one is kept for the in-context examples), got {self.knowmem_per_doc}"
            )
        if not isinstance(self.n_icl, int) or self.n_icl < 1:
            raise ValueError(f"MiniMuseSize.n_icl must be an integer ≥ 1, got {self.n_icl!r}")

    @property
    def n_documents(self) -> int:
        """All documents: four folds, both retain splits and the holdout."""
        return N_FOLDS * self.docs_per_fold + self.n_retain1 + self.n_retain2 + self.n_holdout

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SIZE_PRESETS: dict[str, MiniMuseSize] = {
    "tiny": MiniMuseSize(docs_per_fold=3, n_retain1=6, n_retain2=6, n_holdout=6, n_icl=4),
    "default": MiniMuseSize(),
}


def resolve_size(size: str | MiniMuseSize) -> MiniMuseSize:
    """A `MiniMuseSize` from itself or a preset name."""
    if isinstance(size, MiniMuseSize):
        return size
    if isinstance(size, str) and size in SIZE_PRESETS:
        return SIZE_PRESETS[size]
    raise ValueError(
        f"unknown mini-MUSE size {size!r}; use one of {sorted(SIZE_PRESETS)} or a MiniMuseSize"
    )


# ---------------------------------------------------------------------------------------------
# Event kinds


@dataclass(frozen=True)
class EventKind:
    """One kind of news event: how its facts are drawn and how it is written.

    Attributes:
        name: the kind's name.
        draw: ``(rng, names) -> facts``; ``names`` draws corpus-unique people.
        key: the facts that identify the event's subject (unique in a corpus).
        headlines, ledes: alternative wordings (``str.format`` with the facts).
        body: one tuple of alternative wordings per body sentence.
        quotes: wordings of the quotation (fields ``{quote}`` and the facts).
        questions: ``(question, answer)`` templates, four per kind.
    """

    name: str
    draw: Callable[[random.Random, Callable[[], str]], Facts]
    key: tuple[str, ...]
    headlines: tuple[str, ...]
    ledes: tuple[str, ...]
    body: tuple[tuple[str, ...], ...]
    quotes: tuple[str, ...]
    questions: tuple[tuple[str, str], ...] = field(default=())


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(W.MONTHS)}"


def _company(rng: random.Random) -> str:
    return f"{rng.choice(W.COMPANY_STEMS)} {rng.choice(W.COMPANY_KINDS)}"


def _draw_project(rng: random.Random, person: Callable[[], str]) -> Facts:
    return {
        "town": rng.choice(W.TOWNS),
        "structure": rng.choice(W.STRUCTURES),
        "cost": str(rng.randint(3, 98)),
        "builder": _company(rng),
        "year": str(rng.randint(2026, 2039)),
        "official": person(),
        "date": _date(rng),
    }


def _draw_election(rng: random.Random, person: Callable[[], str]) -> Facts:
    return {
        "town": rng.choice(W.TOWNS),
        "winner": person(),
        "rival": person(),
        "party": rng.choice(W.PARTIES),
        "share": str(rng.randint(34, 78)),
        "date": _date(rng),
    }


def _draw_match(rng: random.Random, person: Callable[[], str]) -> Facts:
    home_town, away_town = rng.sample(W.TOWNS, 2)
    a = rng.randint(1, 6)
    return {
        "home": f"{home_town} {rng.choice(W.MASCOTS)}",
        "away": f"{away_town} {rng.choice(W.MASCOTS)}",
        "a": str(a),
        "b": str(rng.randint(0, a - 1)),
        "stadium": f"{rng.choice(W.COMPANY_STEMS)} {rng.choice(W.STADIUM_KINDS)}",
        "scorer": person(),
        "coach": person(),
        "crowd": str(rng.randint(2, 60)),
        "cup": rng.choice(W.CUPS),
        "date": _date(rng),
    }


def _draw_business(rng: random.Random, person: Callable[[], str]) -> Facts:
    return {
        "company": _company(rng),
        "product": rng.choice(W.PRODUCTS),
        "ceo": person(),
        "town": rng.choice(W.TOWNS),
        "jobs": str(rng.randint(40, 900)),
        "price": str(rng.randint(2, 99) * 100),
        "date": _date(rng),
    }


def _draw_discovery(rng: random.Random, person: Callable[[], str]) -> Facts:
    researcher = person()
    genus = rng.choice(W.TOWNS)
    return {
        "town": rng.choice(W.TOWNS),
        "animal": rng.choice(W.ANIMALS),
        "place": rng.choice(W.PLACES),
        "researcher": researcher,
        "latin": f"{genus}ia {researcher.split()[-1].lower()}i",
        "count": str(rng.randint(3, 90)),
        "date": _date(rng),
    }


def _draw_festival(rng: random.Random, person: Callable[[], str]) -> Facts:
    town = rng.choice(W.TOWNS)
    return {
        "town": town,
        "festival": f"{town} {rng.choice(W.FESTIVAL_KINDS)} Festival",
        "headliner": person(),
        "winner": person(),
        "organiser": person(),
        "visitors": str(rng.randint(2, 60)),
        "days": str(rng.randint(2, 9)),
        "date": _date(rng),
    }


EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind(
        name="project",
        draw=_draw_project,
        key=("town", "structure"),
        headlines=(
            "{town} approves plans for a new {structure}",
            "New {structure} for {town} gets the green light",
            "{town} council backs {structure} plan",
            "Work on the {town} {structure} to begin",
        ),
        ledes=(
            "On {date}, the council of {town} approved plans for a new {structure}.",
            "Councillors in {town} voted on {date} to build a new {structure}.",
            "{town} will get a new {structure} after a council vote on {date}.",
            "A new {structure} is coming to {town}, the council decided on {date}.",
        ),
        body=(
            (
                "The {structure} will cost {cost} million crowns.",
                "The project has a budget of {cost} million crowns.",
                "Officials put the price at {cost} million crowns.",
                "The bill is expected to reach {cost} million crowns.",
            ),
            (
                "Construction will be carried out by {builder}.",
                "The contract went to {builder}.",
                "{builder} won the contract to build it.",
                "The firm chosen to build it is {builder}.",
            ),
            (
                "Work is expected to finish in {year}.",
                "The {structure} should open in {year}.",
                "It is due to be completed by {year}.",
                "The first visitors are expected in {year}.",
            ),
        ),
        quotes=(
            "Council leader {official} called it {quote}.",
            '"It is {quote}," said council leader {official}.',
            "{official}, who leads the council, said the decision was {quote}.",
        ),
        questions=(
            ("How much will the new {structure} in {town} cost?", "{cost} million crowns"),
            ("Which company will build the new {structure} in {town}?", "{builder}"),
            ("When should the new {structure} in {town} be finished?", "{year}"),
            ("Who leads the council that approved the new {structure} in {town}?", "{official}"),
        ),
    ),
    EventKind(
        name="election",
        draw=_draw_election,
        key=("town",),
        headlines=(
            "{winner} elected mayor of {town}",
            "{town} picks {winner} as its new mayor",
            "Victory for {winner} in the {town} mayoral race",
            "{town} has a new mayor",
        ),
        ledes=(
            "{winner} won the mayoral election in {town} on {date}.",
            "Voters in {town} chose {winner} as their mayor on {date}.",
            "On {date}, {winner} was elected mayor of {town}.",
        ),
        body=(
            (
                "{winner} stood for {party}.",
                "The new mayor is a member of {party}.",
                "{winner} represents {party}.",
                "The seat was won for {party}.",
            ),
            (
                "{winner} took {share} per cent of the vote.",
                "The winning share was {share} per cent.",
                "Official results gave the winner {share} per cent.",
            ),
            (
                "The runner-up was {rival}.",
                "{rival} finished second.",
                "{rival} conceded defeat late in the evening.",
            ),
        ),
        quotes=(
            '"This is {quote}," {winner} told supporters.',
            "{winner} described the win as {quote}.",
            "Speaking after the count, {winner} called it {quote}.",
        ),
        questions=(
            ("Who won the mayoral election in {town}?", "{winner}"),
            ("Which party does the new mayor of {town} represent?", "{party}"),
            ("What share of the vote did the new mayor of {town} receive?", "{share} per cent"),
            ("Who came second in the mayoral election in {town}?", "{rival}"),
        ),
    ),
    EventKind(
        name="match",
        draw=_draw_match,
        key=("home",),
        headlines=(
            "{home} beat {away} {a}-{b}",
            "{home} win {cup} clash with {away}",
            "{away} fall to {home}",
            "Late drama as {home} see off {away}",
        ),
        ledes=(
            "{home} beat {away} {a}-{b} in {cup} on {date}.",
            "On {date}, {home} defeated {away} {a}-{b} in {cup}.",
            "{away} lost {a}-{b} to {home} on {date} in {cup}.",
        ),
        body=(
            (
                "The match was played at {stadium}.",
                "A full crowd watched at {stadium}.",
                "{stadium} hosted the game.",
            ),
            (
                "The winning goal came from {scorer}.",
                "{scorer} scored the decisive goal.",
                "{scorer} settled the game with a late strike.",
            ),
            (
                "{crowd} thousand fans attended.",
                "The attendance was {crowd} thousand.",
                "Around {crowd} thousand supporters were there.",
            ),
        ),
        quotes=(
            "Coach {coach} said the win was {quote}.",
            '"It was {quote}," said coach {coach}.',
            "{coach}, the home coach, called it {quote}.",
        ),
        questions=(
            ("Who scored the winning goal when {home} played {away}?", "{scorer}"),
            ("Where did {home} play {away}?", "{stadium}"),
            ("How many fans watched {home} play {away}?", "{crowd} thousand"),
            ("Who coaches {home}?", "{coach}"),
        ),
    ),
    EventKind(
        name="business",
        draw=_draw_business,
        key=("company",),
        headlines=(
            "{company} unveils {product}",
            "{company} bets on {product}",
            "A new launch from {company}",
        ),
        ledes=(
            "On {date}, {company} presented {product} at its base in {town}.",
            "{company}, based in {town}, launched {product} on {date}.",
            "The {town} firm {company} showed off {product} on {date}.",
        ),
        body=(
            (
                "The company is led by {ceo}.",
                "Chief executive {ceo} presented the design.",
                "{ceo} has run the firm since it was founded.",
            ),
            (
                "The launch will create {jobs} jobs.",
                "{company} plans to hire {jobs} workers.",
                "Around {jobs} new jobs are expected.",
            ),
            (
                "It will sell for {price} crowns.",
                "The price was set at {price} crowns.",
                "Buyers will pay {price} crowns.",
            ),
        ),
        quotes=(
            '"This is {quote}," said {ceo}.',
            "{ceo} called the launch {quote}.",
            "According to {ceo}, the product is {quote}.",
        ),
        questions=(
            ("What did {company} unveil?", "{product}"),
            ("Who is the chief executive of {company}?", "{ceo}"),
            ("How many jobs will the launch by {company} create?", "{jobs}"),
            ("How much will the new product from {company} cost?", "{price} crowns"),
        ),
    ),
    EventKind(
        name="discovery",
        draw=_draw_discovery,
        key=("animal", "place"),
        headlines=(
            "New {animal} species found in {place}",
            "Scientists discover a new {animal} in {place}",
            "A new {animal} from {place}",
        ),
        ledes=(
            "On {date}, researchers from the University of {town} reported a new species of "
            "{animal} in {place}.",
            "A team from the University of {town} has found a new {animal} in {place}, it said "
            "on {date}.",
            "The University of {town} announced on {date} that it had found a new {animal} in "
            "{place}.",
        ),
        body=(
            (
                "The team was led by {researcher}.",
                "{researcher} led the expedition.",
                "The study was headed by {researcher}.",
            ),
            (
                "The species was named {latin}.",
                "It has been given the name {latin}.",
                "Its scientific name is {latin}.",
            ),
            (
                "Only {count} specimens have been seen.",
                "The team found {count} individuals.",
                "So far {count} of them have been recorded.",
            ),
        ),
        quotes=(
            '"Finding it was {quote}," said {researcher}.',
            "{researcher} called the discovery {quote}.",
            "For {researcher}, the find is {quote}.",
        ),
        questions=(
            ("Who led the team that found a new {animal} in {place}?", "{researcher}"),
            ("What is the scientific name of the new {animal} from {place}?", "{latin}"),
            ("How many specimens of the new {animal} from {place} were found?", "{count}"),
            ("Which university found a new {animal} in {place}?", "the University of {town}"),
        ),
    ),
    EventKind(
        name="festival",
        draw=_draw_festival,
        key=("festival",),
        headlines=(
            "{festival} draws big crowds",
            "{headliner} headlines the {festival}",
            "A busy week for the {festival}",
        ),
        ledes=(
            "The {festival} opened on {date} with {headliner} on the main stage.",
            "On {date}, {headliner} opened this year's {festival}.",
            "{headliner} topped the bill when the {festival} began on {date}.",
        ),
        body=(
            (
                "Organisers counted {visitors} thousand visitors.",
                "About {visitors} thousand people came.",
                "The festival drew {visitors} thousand guests.",
            ),
            (
                "The event lasted {days} days.",
                "It ran for {days} days.",
                "The programme stretched over {days} days.",
            ),
            (
                "The audience prize went to {winner}.",
                "{winner} won the audience prize.",
                "Festival-goers voted {winner} their favourite act.",
            ),
        ),
        quotes=(
            "Organiser {organiser} called it {quote}.",
            '"It was {quote}," said organiser {organiser}.',
            "{organiser}, who runs the festival, said it was {quote}.",
        ),
        questions=(
            ("Who headlined the {festival}?", "{headliner}"),
            ("How many visitors came to the {festival}?", "{visitors} thousand"),
            ("Who won the audience prize at the {festival}?", "{winner}"),
            ("How many days did the {festival} last?", "{days}"),
        ),
    ),
)
"""The six kinds of event (module docstring)."""


def _capitalize(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


@dataclass(frozen=True)
class NewsDocument:
    """One generated document.

    Attributes:
        index: position in generation order (a stable id).
        split: ``"fold1"`` … ``"fold4"``, ``"retain1"``, ``"retain2"`` or ``"holdout"``.
        kind: its `EventKind` name.
        prompt: headline and lede (VerbMem's prompt).
        gt: the body (VerbMem's continuation); ``text = prompt + " " + gt``.
        facts: the drawn facts.
        qa: the four ``(question, answer)`` pairs.
        test_questions: indices into ``qa`` of KnowMem's test questions.
    """

    index: int
    split: str
    kind: str
    prompt: str
    gt: str
    facts: dict[str, str]
    qa: tuple[tuple[str, str], ...]
    test_questions: tuple[int, ...]

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.gt}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["text"] = self.text
        out["qa"] = [{"question": q, "answer": a} for q, a in self.qa]
        return out


def _write(kind: EventKind, facts: Facts, rng: random.Random) -> tuple[str, str]:
    """``(prompt, gt)`` of one event: headline + lede, then the shuffled body and quotation."""
    fields = dict(facts, quote=rng.choice(W.QUOTES))
    headline = _capitalize(rng.choice(kind.headlines).format(**fields))
    lede = _capitalize(rng.choice(kind.ledes).format(**fields))
    sentences = [_capitalize(rng.choice(variants).format(**fields)) for variants in kind.body]
    sentences.append(_capitalize(rng.choice(kind.quotes).format(**fields)))
    rng.shuffle(sentences)
    return f"{headline}\n\n{lede}", " ".join(sentences)


def _split_plan(size: MiniMuseSize) -> list[tuple[str, int]]:
    folds = [(f"fold{k}", size.docs_per_fold) for k in range(1, N_FOLDS + 1)]
    return [
        *folds,
        ("retain1", size.n_retain1),
        ("retain2", size.n_retain2),
        ("holdout", size.n_holdout),
    ]


def generate_documents(seed: int, size: str | MiniMuseSize = "default") -> list[NewsDocument]:
    """All documents in generation order (folds 1-4, retain1, retain2, holdout).

    Kinds cycle within each split (every split holds every kind in turn, starting at a random
    kind); subjects and people are unique in the corpus.

    Raises:
        ValueError: when the word lists cannot give that many distinct subjects.
    """
    size = resolve_size(size)
    rng = random.Random(seed)
    used_people: set[str] = set()
    used_keys: set[tuple[str, ...]] = set()

    def person() -> str:
        for _ in range(10_000):
            name = (
                f"{rng.choice(W.FIRST_NAME_HEADS)}{rng.choice(W.FIRST_NAME_TAILS)} "
                f"{rng.choice(W.SURNAME_STEMS)}{rng.choice(W.SURNAME_ENDINGS)}"
            )
            if name not in used_people:
                used_people.add(name)
                return name
        raise ValueError("ran out of distinct person names; use a smaller MiniMuseSize")

    documents: list[NewsDocument] = []
    for split, count in _split_plan(size):
        offset = rng.randrange(len(EVENT_KINDS))
        for j in range(count):
            kind = EVENT_KINDS[(offset + j) % len(EVENT_KINDS)]
            for _ in range(1_000):
                people_before = set(used_people)
                facts = kind.draw(rng, person)
                key = (kind.name, *(facts[k] for k in kind.key))
                if key not in used_keys:
                    used_keys.add(key)
                    break
                used_people.intersection_update(people_before)  # give the names back
            else:
                raise ValueError(
                    f"ran out of distinct {kind.name} subjects after {len(documents)} "
                    "documents; use a smaller MiniMuseSize"
                )
            prompt, gt = _write(kind, facts, rng)
            qa = tuple((q.format(**facts), a.format(**facts)) for q, a in kind.questions)
            tests = tuple(sorted(rng.sample(range(len(qa)), size.knowmem_per_doc)))
            documents.append(
                NewsDocument(
                    index=len(documents),
                    split=split,
                    kind=kind.name,
                    prompt=prompt,
                    gt=gt,
                    facts=facts,
                    qa=qa,
                    test_questions=tests,
                )
            )
    return documents


def _texts(docs: list[NewsDocument]) -> list[dict[str, str]]:
    return [{"text": d.text} for d in docs]


def _qa_rows(docs: list[NewsDocument], *, test: bool) -> list[dict[str, str]]:
    rows = []
    for d in docs:
        for i, (q, a) in enumerate(d.qa):
            if (i in d.test_questions) == test:
                rows.append({"question": q, "answer": a})
    return rows


def _all_qa(docs: list[NewsDocument]) -> list[dict[str, str]]:
    return [{"question": q, "answer": a} for d in docs for q, a in d.qa]


def generate_minimuse(
    seed: int, size: str | MiniMuseSize = "default"
) -> dict[str, dict[str, list[dict[str, str]]]]:
    """Every config and split of mini-MUSE: ``{config: {split: rows}}`` (module docstring)."""
    size = resolve_size(size)
    docs = generate_documents(seed, size)
    by_split: dict[str, list[NewsDocument]] = {}
    for d in docs:
        by_split.setdefault(d.split, []).append(d)
    folds = [by_split[f"fold{k}"] for k in range(1, N_FOLDS + 1)]
    forget, retain1, retain2, holdout = (
        folds[0],
        by_split["retain1"],
        by_split["retain2"],
        by_split["holdout"],
    )
    all_forget = [d for fold in folds for d in fold]
    return {
        "raw": {
            "forget": _texts(forget),
            "retain1": _texts(retain1),
            "retain2": _texts(retain2),
            "holdout": _texts(holdout),
        },
        "train": {
            "forget": _texts(all_forget),
            "retain1": _texts(retain1),
            "retain2": _texts(retain2),
        },
        "verbmem": {"forget": [{"prompt": d.prompt, "gt": d.gt} for d in forget]},
        "knowmem": {
            "forget_qa": _qa_rows(forget, test=True),
            "forget_qa_icl": _qa_rows(forget, test=False)[: size.n_icl],
            "retain_qa": _qa_rows(retain2, test=True),
            "retain_qa_icl": _qa_rows(retain2, test=False)[: size.n_icl],
        },
        "privleak": {
            "forget": _texts(forget),
            "retain": _texts(retain2),
            "holdout": _texts(holdout),
        },
        "scal": {
            f"forget_{k}": _texts([d for fold in folds[:k] for d in fold])
            for k in range(1, N_FOLDS + 1)
        },
        "sust": {f"forget_{k}": _texts(folds[k - 1]) for k in range(1, N_FOLDS + 1)},
        "train_qa": {
            "forget": _all_qa(all_forget),
            "retain1": _all_qa(retain1),
            "retain2": _all_qa(retain2),
        },
    }
