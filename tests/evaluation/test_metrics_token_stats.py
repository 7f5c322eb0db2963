"""token_statistics on hand-built logits."""

import math

import pytest
import torch

from constrained_unlearn.evaluation.metrics import TokenStats, mean_nll, token_statistics
from constrained_unlearn.losses import next_token_alignment

LN2 = math.log(2.0)


def _quarter_quarter_half() -> torch.Tensor:
    # logits (0, 0, ln 2) -> p = (1/4, 1/4, 1/2), log p = (-2 ln2, -2 ln2, -ln2)
    return torch.tensor([0.0, 0.0, LN2])


def test_single_position_by_hand() -> None:
    logits = _quarter_quarter_half().view(1, 1, 3)
    stats = token_statistics(logits, torch.tensor([[2]]), torch.tensor([[True]]))
    # log p(y=2) = -ln 2 = -0.693147
    assert stats.log_probs[0].item() == pytest.approx(-LN2, abs=1e-6)
    # mu = 1/4(-2ln2)*2 + 1/2(-ln2) = -1.5 ln2 = -1.039721
    assert stats.mu[0].item() == pytest.approx(-1.5 * LN2, abs=1e-6)
    # E[log^2 p] = 1/2 (2ln2)^2 + 1/2 ln2^2 = 2.5 ln2^2; var = 2.5 ln2^2 - 2.25 ln2^2 = 0.25 ln2^2
    # sigma = 0.5 ln2 = 0.346574
    assert stats.sigma[0].item() == pytest.approx(0.5 * LN2, abs=1e-6)
    assert stats.correct[0].tolist() == [True]  # argmax is index 2
    assert stats.log_probs[0].dtype == torch.float32


def test_ragged_batch_keeps_only_masked_positions_in_order() -> None:
    row = _quarter_quarter_half()
    uniform = torch.zeros(3)
    logits = torch.stack([torch.stack([row, uniform, row]), torch.stack([uniform, row, row])])
    targets = torch.tensor([[0, 1, 2], [2, 2, 0]])
    mask = torch.tensor([[True, False, True], [False, True, True]])
    stats = token_statistics(logits.to(torch.bfloat16), targets, mask)
    assert stats.lengths() == [2, 2]
    # example 0: positions 0 (target 0: log 1/4) and 2 (target 2: log 1/2)
    assert stats.log_probs[0].tolist() == pytest.approx([-2 * LN2, -LN2], abs=1e-3)
    assert stats.correct[0].tolist() == [False, True]
    # example 1: positions 1 (target 2: -ln2, correct) and 2 (target 0: -2ln2, wrong)
    assert stats.log_probs[1].tolist() == pytest.approx([-LN2, -2 * LN2], abs=1e-3)
    assert stats.correct[1].tolist() == [True, False]
    # mean NLL per example = (2 ln2 + ln2)/2 = 1.5 ln2 = 1.039721
    assert stats.mean_nll() == pytest.approx([1.5 * LN2, 1.5 * LN2], abs=1e-3)
    # drop_last removes each example's final position (the EOS)
    dropped = stats.drop_last()
    assert dropped.lengths() == [1, 1]
    assert dropped.correct[1].tolist() == [True]


def test_uniform_distribution_sigma_is_floored() -> None:
    # uniform p: every log p equals mu, so var = 0 and is floored at 1e-6 -> sigma = 1e-3
    stats = token_statistics(torch.zeros(1, 1, 4), torch.tensor([[1]]), torch.tensor([[True]]))
    assert stats.mu[0].item() == pytest.approx(-math.log(4.0), abs=1e-6)
    assert stats.sigma[0].item() == pytest.approx(1e-3, rel=1e-4)


def test_negative_infinite_logit_gives_no_nan() -> None:
    # p = (1/2, 1/2, 0): mu = -ln2, var = 0 -> floored
    logits = torch.tensor([[[0.0, 0.0, -math.inf]]])
    stats = token_statistics(logits, torch.tensor([[0]]), torch.tensor([[True]]))
    assert stats.mu[0].item() == pytest.approx(-LN2, abs=1e-6)
    assert not torch.isnan(stats.sigma[0]).any()


def test_works_after_next_token_alignment() -> None:
    # raw causal-LM logits [1, 3, 3]; labels: prompt -100, then two answer tokens
    raw = torch.stack([_quarter_quarter_half(), torch.zeros(3), torch.zeros(3)]).unsqueeze(0)
    labels = torch.tensor([[-100, 2, 1]])
    shifted, targets, mask = next_token_alignment(raw, labels)
    stats = token_statistics(shifted, targets, mask)
    # position 0 predicts token 2 with p=1/2; position 1 predicts token 1 under uniform (1/3)
    assert stats.log_probs[0].tolist() == pytest.approx([-LN2, -math.log(3.0)], abs=1e-6)


def test_bad_shapes_and_mask_dtype_are_refused() -> None:
    with pytest.raises(ValueError, match="logits must be"):
        token_statistics(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.ones(2) > 0)
    with pytest.raises(ValueError, match="targets"):
        token_statistics(
            torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 2) > 0
        )
    with pytest.raises(ValueError, match="bool"):
        token_statistics(
            torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2)
        )


def test_mean_nll_of_empty_example_names_it() -> None:
    with pytest.raises(ValueError, match="example 1"):
        mean_nll([torch.tensor([-1.0]), torch.tensor([])])
    assert isinstance(TokenStats([], [], [], []).drop_last(), TokenStats)
