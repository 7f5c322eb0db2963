"""MUSE VerbMem / KnowMem / PrivLeak with both conventions."""

import pytest

from constrained_unlearn.evaluation.metrics import (
    MUSE_RETRAIN_MIN_K_AUC,
    build_knowmem_prompt,
    cut_knowmem_answer,
    knowmem_scores,
    muse_privleak,
    truncate_reference,
    verbmem_scores,
)


class _WordTokenizer:
    """Whitespace tokenizer with a BOS id 0 prepended, like a Llama tokenizer's encode()."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {"<s>": 0}

    def encode(self, text: str) -> list[int]:
        return [0] + [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]

    def decode(self, token_ids: list[int], skip_special_tokens: bool = False) -> str:
        inverse = {i: w for w, i in self.vocab.items()}
        return " ".join(inverse[i] for i in token_ids if not (skip_special_tokens and i == 0))


WORDS = [f"w{i}" for i in range(200)]


def test_truncate_reference_counts_bos() -> None:
    # 128 ids = BOS + 127 words
    cut = truncate_reference(" ".join(WORDS), _WordTokenizer(), 128)
    assert cut.split() == WORDS[:127]


def test_verbmem_conventions_by_hand() -> None:
    generation = " ".join(WORDS[:127])
    reference = " ".join(WORDS)
    # open-unlearning: whole 200-token reference; LCS 127 -> P = 1, R = 127/200,
    # F1 = 2·127/(127 + 200) = 254/327 = 0.776758
    ou = verbmem_scores([generation], [reference], convention="open-unlearning")
    assert ou[0] == pytest.approx(254 / 327)
    # muse-original: reference cut to BOS + 127 words = the generation -> F1 = 1
    muse = verbmem_scores(
        [generation], [reference], convention="muse-original", tokenizer=_WordTokenizer()
    )
    assert muse[0] == pytest.approx(1.0)


def test_verbmem_stemming_follows_convention() -> None:
    # "dogs running" vs "dog run": stemmed (OU) F1 = 1, unstemmed (MUSE) F1 = 0
    assert verbmem_scores(["dogs running"], ["dog run"])[0] == 1.0
    muse = verbmem_scores(
        ["dogs running"], ["dog run"], convention="muse-original", tokenizer=_WordTokenizer()
    )
    assert muse[0] == 0.0


def test_verbmem_bad_inputs() -> None:
    with pytest.raises(ValueError, match="pass tokenizer="):
        verbmem_scores(["a"], ["a"], convention="muse-original")
    with pytest.raises(ValueError, match="tofu-original"):
        verbmem_scores(["a"], ["a"], convention="tofu-original")
    with pytest.raises(ValueError, match="convention='muse'"):
        verbmem_scores(["a"], ["a"], convention="muse")
    with pytest.raises(ValueError, match="generations has 1 entries but references has 2"):
        verbmem_scores(["a"], ["a", "b"])


def test_knowmem_prompt() -> None:
    prompt = build_knowmem_prompt("Q3?", [("Q1?", "A1"), ("Q2?", "A2")])
    assert (
        prompt
        == "Question: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: A2\n\nQuestion: Q3?\nAnswer: "
    )
    assert build_knowmem_prompt("Q?", []) == "Question: Q?\nAnswer: "
    with pytest.raises(ValueError, match=r"icl_pairs\[0\]"):
        build_knowmem_prompt("Q?", [("only question",)])  # type: ignore[list-item]


def test_knowmem_cut_at_earliest_stop_string() -> None:
    assert cut_knowmem_answer(" Paris\n\nQuestion: next") == "Paris"
    assert cut_knowmem_answer("London, UK\nQuestion: x") == "London, UK"
    assert cut_knowmem_answer("Rome Question: y\n\nz") == "Rome"
    assert cut_knowmem_answer("no stop here ") == "no stop here"
    assert cut_knowmem_answer("\n\nQuestion: leading") == ""


def test_knowmem_scores_by_hand() -> None:
    # cut "Paris France" vs gold "Paris": P = 1/2, R = 1 -> F1 = 2/3; second is exact -> 1;
    # third generation is cut to nothing -> empty generation scores 0
    scores = knowmem_scores(
        ["Paris France\n\nQuestion: what", "Berlin", "\nQuestion: x"],
        ["Paris", "Berlin", "Madrid"],
    )
    assert scores.tolist() == pytest.approx([2 / 3, 1.0, 0.0])


def test_muse_privleak_by_hand() -> None:
    # MUSE orientation: target AUC 0.001 vs retrain 0.4772 -> (0.001-0.4772)/0.4772·100 = -99.79044
    assert muse_privleak(
        0.001, auc_retrain=MUSE_RETRAIN_MIN_K_AUC["news"], orientation="muse-original"
    ) == pytest.approx(-99.79044, abs=1e-4)
    # the same AUCs in OU orientation (1 - x) give the same number
    assert muse_privleak(0.999, auc_retrain=0.5228, orientation="open-unlearning") == pytest.approx(
        -99.79044, abs=1e-4
    )
    assert MUSE_RETRAIN_MIN_K_AUC["books"] == 0.5393
    with pytest.raises(ValueError, match="orientation='ou'"):
        muse_privleak(0.5, auc_retrain=0.5, orientation="ou")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="undefined"):
        muse_privleak(0.5, auc_retrain=1.0, orientation="open-unlearning")
