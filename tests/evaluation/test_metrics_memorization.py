"""Extraction strength and exact memorisation on crafted prediction sequences."""

import math

import pytest
import torch

from constrained_unlearn.evaluation.metrics import (
    exact_memorization,
    extraction_strength,
    token_statistics,
)

T, F = True, False


def test_extraction_strength_by_hand() -> None:
    cases = [
        [F, T, F, T, T],  # hit suffix starts at k*=3 -> 1 - 3/5 = 0.4
        [T, T, T, T],  # k*=0 -> 1.0
        [F, F, T],  # k*=2 -> 1 - 2/3 = 1/3
        [F, F, F, F],  # last token missed: k*=4 -> 0
        [T, T, F],  # last token missed: k*=3 -> 0
        [],  # no answer token -> 0
    ]
    es = extraction_strength([torch.tensor(c, dtype=torch.bool) for c in cases])
    assert es.tolist() == pytest.approx([0.4, 1.0, 1 / 3, 0.0, 0.0, 0.0])


def test_extraction_strength_ou_quirk() -> None:
    # OU's loop stops at k = T'-1 when nothing matches: 1/T' instead of 0
    cases = [[F, F, F, F], [T, T, F], [F, T, F, T, T], [F, F, T], []]
    es = extraction_strength(cases, ou_compat=True)
    # 1/4, 1/3, unchanged 0.4, unchanged 1/3 (same as "only the last matches"), empty -> 0
    assert es.tolist() == pytest.approx([0.25, 1 / 3, 0.4, 1 / 3, 0.0])


def test_exact_memorization_by_hand() -> None:
    # 3 of 5 hits -> 0.6; 0 of 2 -> 0
    assert exact_memorization([[F, T, F, T, T], [F, F]]).tolist() == pytest.approx([0.6, 0.0])


def test_exact_memorization_empty_example_is_nan_with_warning() -> None:
    with pytest.warns(RuntimeWarning, match=r"\[1\]"):
        em = exact_memorization([[T], []])
    assert em[0] == 1.0 and math.isnan(em[1])


def test_es_from_logits_drops_eos_position() -> None:
    # greedy predictions over 4 answer positions (last is EOS): argmax ids 0, 1, 1, 2
    # targets 1, 1, 1, 0 -> hits F, T, T, F; without EOS: F, T, T -> k*=1 -> ES = 2/3
    argmax = torch.tensor([0, 1, 1, 2])
    logits = torch.nn.functional.one_hot(argmax, 3).float().unsqueeze(0) * 5.0
    targets = torch.tensor([[1, 1, 1, 0]])
    stats = token_statistics(logits, targets, torch.ones(1, 4, dtype=torch.bool)).drop_last()
    assert stats.correct[0].tolist() == [F, T, T]
    assert extraction_strength(stats.correct)[0] == pytest.approx(2 / 3)
    assert exact_memorization(stats.correct)[0] == pytest.approx(2 / 3)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"correct\[0\] must be a 1-D"):
        extraction_strength([torch.ones(2, 2, dtype=torch.bool)])
    with pytest.raises(ValueError, match=r"correct\[1\] must be booleans"):
        exact_memorization([[T], torch.tensor([0.5])])
