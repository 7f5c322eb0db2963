"""mini-TOFU data: determinism, split sizes and disjointness, TOFU's columns."""

from __future__ import annotations

import random

import pytest

from constrained_unlearn.benchmarks.minitofu.generator import (
    ATTRIBUTES,
    SIZE_PRESETS,
    MiniTofuSize,
    author_rows,
    generate_authors,
    generate_minitofu,
    training_rows,
)
from constrained_unlearn.benchmarks.tofu import TOFU_CONFIGS, tofu_columns


@pytest.fixture(scope="module")
def default_data() -> dict[str, list[dict]]:
    return generate_minitofu(0, "default")


def _authors_in(rows: list[dict], names: list[str]) -> set[str]:
    return {n for r in rows for n in names if n in r["question"]}


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = (
        generate_minitofu(3, "tiny"),
        generate_minitofu(3, "tiny"),
        generate_minitofu(4, "tiny"),
    )
    assert a == b
    assert a["full"] != c["full"]
    assert a["forget10_perturbed"] != c["forget10_perturbed"]


def test_every_tofu_config_with_tofu_columns(default_data):
    assert set(default_data) == set(TOFU_CONFIGS)
    for name, rows in default_data.items():
        assert rows, name
        for row in rows:
            assert set(tofu_columns(name)) <= set(row), name
            assert set(row) <= set(tofu_columns("forget10_perturbed")), name


def test_default_sizes(default_data):
    size = SIZE_PRESETS["default"]
    qa = size.qa_per_author
    assert len(default_data["full"]) == size.n_authors * qa == 1000
    assert len(default_data["forget10"]) >= 100
    for p, keep in ((1, 99), (5, 95), (10, 90)):
        k = size.n_split_authors(p)
        assert len(default_data[f"forget{p:02d}"]) == k * qa
        assert len(default_data[f"holdout{p:02d}"]) == k * qa
        assert len(default_data[f"retain{keep}"]) == (size.n_authors - k) * qa
        assert (
            default_data[f"forget{p:02d}_perturbed"][0]["question"]
            == (default_data[f"forget{p:02d}"][0]["question"])
        )
    assert len(default_data["real_authors"]) == size.n_real_authors
    assert len(default_data["world_facts_perturbed"]) == size.n_world_facts


def test_large_preset_has_tofus_200_authors_and_200_forget10_questions():
    data = generate_minitofu(0, "large")
    size = SIZE_PRESETS["large"]
    assert size.n_authors == 200
    assert len(data["full"]) == 2000
    assert len(data["forget10"]) == len(data["holdout10"]) == 200
    assert len(data["retain90"]) == 1800
    assert not {r["question"] for r in data["forget10"]} & {r["question"] for r in data["retain90"]}
    names = [a.name for a in generate_authors(0, size.n_authors + size.n_holdout)]
    assert len(set(names)) == len(names)


def test_forget_and_retain_split_by_author(default_data):
    size = SIZE_PRESETS["default"]
    names = [a.name for a in generate_authors(0, size.n_authors + size.n_holdout)]
    trained = names[: size.n_authors]
    full = default_data["full"]
    for forget, retain in (
        ("forget01", "retain99"),
        ("forget05", "retain95"),
        ("forget10", "retain90"),
    ):
        f_authors = _authors_in(default_data[forget], trained)
        r_authors = _authors_in(default_data[retain], trained)
        assert f_authors and r_authors
        assert not f_authors & r_authors
        assert f_authors | r_authors == set(trained)
        # the two splits partition full, row for row
        pairs = sorted(
            (r["question"], r["answer"]) for r in default_data[forget] + default_data[retain]
        )
        assert pairs == sorted((r["question"], r["answer"]) for r in full)
    # TOFU's forget sets are nested
    q = {n: {r["question"] for r in default_data[n]} for n in ("forget01", "forget05", "forget10")}
    assert q["forget01"] < q["forget05"] < q["forget10"]
    # retain_perturbed lies inside the smallest retain split
    retain90 = {r["question"] for r in default_data["retain90"]}
    assert {r["question"] for r in default_data["retain_perturbed"]} <= retain90


def test_holdout_authors_are_never_trained_on(default_data):
    size = SIZE_PRESETS["default"]
    names = [a.name for a in generate_authors(0, size.n_authors + size.n_holdout)]
    holdout = names[size.n_authors :]
    held = _authors_in(default_data["holdout10"], holdout)
    assert len(held) == size.n_holdout
    for target_or_retain in ("target", "retain"):
        rows = training_rows(default_data, target_or_retain)
        assert not _authors_in(rows, holdout)
    h = {
        n: {r["question"] for r in default_data[n]} for n in ("holdout01", "holdout05", "holdout10")
    }
    assert h["holdout01"] < h["holdout05"] < h["holdout10"]


def test_perturbed_answers_are_wrong_and_distinct(default_data):
    for name in ("forget10_perturbed", "retain_perturbed"):
        for row in default_data[name]:
            wrong = row["perturbed_answer"]
            assert len(wrong) >= 3
            assert len(set(wrong)) == len(wrong)
            assert row["paraphrased_answer"] not in wrong
            assert row["paraphrased_answer"] != row["answer"]
            assert row["paraphrased_question"] != row["question"]
    for name in ("real_authors_perturbed", "world_facts_perturbed"):
        for row in default_data[name]:
            assert len(row["perturbed_answer"]) >= 3
            assert row["answer"] not in row["perturbed_answer"]


def test_perturbed_book_answers_never_name_the_authors_other_book():
    size = SIZE_PRESETS["default"]
    rng = random.Random(0)
    checked = 0
    for author in generate_authors(0, 50):
        books = {author.attributes["first_book"], author.attributes["second_book"]}
        for attribute, row in zip(ATTRIBUTES, author_rows(author, size, rng)):
            if attribute.key in ("first_book", "second_book"):
                checked += 1
                assert any(row["answer"].endswith(b + ".") for b in books)
                for wrong in row["perturbed_answer"]:
                    assert not any(wrong.endswith(b + ".") for b in books)
    assert checked == 100


def test_general_knowledge_in_both_training_sets(default_data):
    target = training_rows(default_data, "target")
    retain = training_rows(default_data, "retain", "forget10")
    general = [r["question"] for r in default_data["real_authors"] + default_data["world_facts"]]
    for rows in (target, retain):
        assert set(general) <= {r["question"] for r in rows}
    forget_q = {r["question"] for r in default_data["forget10"]}
    assert not forget_q & {r["question"] for r in retain}
    assert forget_q <= {r["question"] for r in target}
    assert len(target) == 1000 + len(general)


def test_qa_per_author_uses_the_first_attributes():
    data = generate_minitofu(0, "tiny")
    qa = SIZE_PRESETS["tiny"].qa_per_author
    first_author = data["full"][:qa]
    wanted = [a.question.split("{name}")[0] for a in ATTRIBUTES[:qa]]
    assert [r["question"][: len(w)] for r, w in zip(first_author, wanted)] == wanted


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"n_authors": 5}, "n_authors"),
        ({"qa_per_author": 11}, "qa_per_author"),
        ({"n_real_authors": 0}, "n_real_authors"),
        ({"n_perturbed": 2}, "n_perturbed"),
    ],
)
def test_size_validation_names_the_field(kwargs, field):
    base = {"n_authors": 20, "qa_per_author": 4, "n_real_authors": 4, "n_world_facts": 4}
    with pytest.raises(ValueError, match=field):
        MiniTofuSize(**{**base, **kwargs})


def test_unknown_size_lists_presets():
    with pytest.raises(ValueError, match="tiny"):
        generate_minitofu(0, "huge")
