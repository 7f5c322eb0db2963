"""ROUGE recall / F1 on hand-counted token overlaps, and the empty-input rules."""

import math

import pytest

from constrained_unlearn.evaluation.metrics import rouge_l_f1, rouge_l_recall, rouge_scores


def test_rouge_by_hand() -> None:
    # ref  "the cat sat on the mat"  (6 tokens), gen "the cat on a mat" (5 tokens)
    # ROUGE-1 recall: the(1 of 2) + cat + on + mat = 4 -> 4/6
    # LCS = "the cat on mat" = 4 -> recall 4/6, precision 4/5, F1 = 2·(4/5·4/6)/(4/5+4/6) = 8/11
    (s,) = rouge_scores(["the cat on a mat"], ["the cat sat on the mat"])
    assert s.rouge1_recall == pytest.approx(4 / 6)
    assert s.rougeL_recall == pytest.approx(4 / 6)
    assert s.rougeL_f1 == pytest.approx(8 / 11)


def test_rouge_l_recall_counts_order() -> None:
    # reversed order: LCS of "c b a" vs "a b c" is 1 -> recall 1/3; ROUGE-1 recall is 3/3
    (s,) = rouge_scores(["c b a"], ["a b c"])
    assert s.rougeL_recall == pytest.approx(1 / 3)
    assert s.rouge1_recall == pytest.approx(1.0)


def test_stemming_switch() -> None:
    # "running dogs" stems to "run dog": full match with the stemmer, no match without
    assert rouge_l_recall(["running dogs"], ["run dog"], use_stemmer=True)[0] == 1.0
    assert rouge_l_recall(["running dogs"], ["run dog"], use_stemmer=False)[0] == 0.0


def test_empty_generation_scores_zero() -> None:
    (s,) = rouge_scores([""], ["a real answer"])
    assert (s.rouge1_recall, s.rougeL_recall, s.rougeL_f1) == (0.0, 0.0, 0.0)


def test_empty_reference_is_nan_with_warning() -> None:
    with pytest.warns(RuntimeWarning, match=r"indices 1"):
        f1 = rouge_l_f1(["a b", "a b", "c"], ["a b", "!!!", "c"])
    assert f1[0] == 1.0 and f1[2] == 1.0
    assert math.isnan(f1[1])
    assert math.isnan(f1.mean())  # the split score cannot silently hide the bad row


def test_mismatched_lengths_and_types() -> None:
    with pytest.raises(ValueError, match="generations has 2 entries but references has 1"):
        rouge_scores(["a", "b"], ["a"])
    with pytest.raises(TypeError, match=r"generations\[0\]"):
        rouge_scores([[1, 2]], ["a"])  # type: ignore[list-item]


def test_rouge_loads_only_the_porter_stemmer_of_nltk() -> None:
    """rouge_score imports the whole of nltk; the metric loads just its Porter stemmer, and a
    later ``import nltk`` still gets the full package."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from constrained_unlearn.evaluation.metrics import rouge_scores\n"
        "s = rouge_scores(['the cats were running'], ['The cat runs'])[0]\n"
        "assert 'nltk' not in sys.modules and 'scipy.stats' not in sys.modules, sorted(sys.modules)\n"
        "assert s.rougeL_recall == 1.0, s\n"
        "import nltk\n"
        "assert callable(nltk.sent_tokenize) and nltk.stem.porter.PorterStemmer\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
