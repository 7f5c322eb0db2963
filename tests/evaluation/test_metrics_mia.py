"""MIA scores, AUC and privacy leak on hand-computed values."""

import math
import zlib

import numpy as np
import pytest
import torch

from constrained_unlearn.evaluation.metrics import (
    gradnorm_scores,
    loss_scores,
    mia_auc,
    min_k_plus_plus_scores,
    min_k_scores,
    reference_scores,
    relative_difference,
    tofu_privleak,
    zlib_scores,
)

# five token log-probs; NLL sum = 0.1 + 2 + 0.5 + 3 + 1 = 6.6
LP = torch.tensor([-0.1, -2.0, -0.5, -3.0, -1.0])


def test_loss_and_zlib_by_hand() -> None:
    assert loss_scores([LP])[0] == pytest.approx(6.6 / 5)  # 1.32
    # zlib.compress(b"abc") is 11 bytes (2 header + 5 deflate + 4 adler32) -> 1.32 / 11 = 0.12
    assert len(zlib.compress(b"abc")) == 11
    assert zlib_scores([LP], ["abc"])[0] == pytest.approx(0.12)


def test_min_k_selects_floor_k_times_length() -> None:
    # k=0.4 over 5 tokens -> K = 2: the two lowest are -3 and -2 -> score (3 + 2)/2 = 2.5
    assert min_k_scores([LP], k=0.4)[0] == pytest.approx(2.5)
    # k=0.2 -> K=1 -> 3.0; k=0.1 -> int(0.5)=0 -> max(1, 0) = 1 -> 3.0; k=1 -> mean NLL 1.32
    assert min_k_scores([LP], k=0.2)[0] == pytest.approx(3.0)
    assert min_k_scores([LP], k=0.1)[0] == pytest.approx(3.0)
    assert min_k_scores([LP], k=1.0)[0] == pytest.approx(1.32)


def test_min_k_plus_plus_by_hand() -> None:
    # mu = -1, sigma = 2: z = (lp + 1)/2 = (0.45, -0.5, 0.25, -1.0, 0.0)
    # K = 2 lowest: -1.0, -0.5 -> score 0.75
    mu, sigma = torch.full((5,), -1.0), torch.full((5,), 2.0)
    assert min_k_plus_plus_scores([LP], [mu], [sigma], k=0.4)[0] == pytest.approx(0.75)


def test_reference_scores() -> None:
    assert reference_scores([1.0, 2.0], [0.5, 2.5]).tolist() == pytest.approx([0.5, -0.5])


def test_mia_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"log_probs\[1\] has no token: example 1"):
        min_k_scores([LP, torch.tensor([])])
    with pytest.raises(ValueError, match="k = 0"):
        min_k_scores([LP], k=0.0)
    with pytest.raises(ValueError, match="example 0: log_probs, mu and sigma"):
        min_k_plus_plus_scores([LP], [LP[:2]], [LP[:2]])
    with pytest.raises(ValueError, match="log_probs has 1 entries but texts has 2"):
        zlib_scores([LP], ["a", "b"])
    with pytest.raises(ValueError, match="target_nll has 2 entries"):
        reference_scores([1.0, 2.0], [1.0])


def test_auc_crafted_ranking() -> None:
    # holdout 0.8 beats all 3 forget scores, 0.3 beats only 0.1 -> 4 of 6 pairs -> 2/3
    assert mia_auc([0.1, 0.4, 0.35], [0.8, 0.3]) == pytest.approx(4 / 6)
    # ties count one half; perfectly memorised forget set (low loss) -> 1
    assert mia_auc([1.0], [1.0]) == pytest.approx(0.5)
    assert mia_auc([0.1, 0.2], [0.9, 1.0]) == 1.0
    # tie across classes: pairs (h=0.5 vs f=0.5) 0.5, (h=0.5 vs f=0.1) 1 -> 1.5/2 = 0.75
    assert mia_auc([0.5, 0.1], [0.5]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="both classes"):
        mia_auc([], [1.0])


class _Affine(torch.nn.Module):
    """s(x) = w·x + b with a (no-op) dropout that records the mode it was called in."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)
        self.frozen = torch.nn.Linear(2, 1)
        self.frozen.requires_grad_(False)
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.linear(x).squeeze(-1) + 0.0 * self.frozen(x).squeeze(-1)


def test_gradnorm_by_hand_and_restores_state() -> None:
    model = _Affine().eval()
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    # loss_b = w·x_b + b: grad_w = x_b, grad_b = 1; mean over the two trainable tensors
    # p=2: ((5 + 1)/2, (1 + 1)/2) = (3, 1); p=1: ((7+1)/2, (1+1)/2) = (4, 1);
    # p=inf: ((4+1)/2, (1+1)/2) = (2.5, 1)
    assert gradnorm_scores(model, lambda m: m(x), p=2) == pytest.approx([3.0, 1.0])
    assert gradnorm_scores(model, lambda m: m(x), p=1) == pytest.approx([4.0, 1.0])
    assert gradnorm_scores(model, lambda m: m(x), p=math.inf) == pytest.approx([2.5, 1.0])
    assert model.modes == [True, True, True]  # ran in train mode
    assert not model.training  # previous eval mode restored
    assert all(w.grad is None for w in model.parameters())  # gradients cleared


def test_gradnorm_single_example_and_errors() -> None:
    model = _Affine().train()
    x = torch.tensor([3.0, 4.0])
    assert gradnorm_scores(model, lambda m: m(x)).tolist() == pytest.approx([3.0])
    assert model.training
    with pytest.raises(ValueError, match="p = 3"):
        gradnorm_scores(model, lambda m: m(x), p=3)
    with pytest.raises(ValueError, match="without a graph"):
        gradnorm_scores(model, lambda m: m(x).detach())
    model.linear.weight.grad = torch.ones_like(model.linear.weight)
    with pytest.warns(RuntimeWarning, match="discards the gradients"):
        gradnorm_scores(model, lambda m: m(x))
    assert model.linear.weight.grad is None


def test_tofu_privleak_by_hand() -> None:
    # target-like: AUC 0.99 vs retain 0.5 -> (0.01 - 0.5)/0.5 * 100 = -98
    assert tofu_privleak(0.99, auc_retain=0.5) == pytest.approx(-98.0, abs=1e-6)
    # equal to retain -> 0; over-unlearnt: 0.2 vs 0.6 -> (0.8 - 0.4)/0.4 * 100 = +100
    assert tofu_privleak(0.6, auc_retain=0.6) == pytest.approx(0.0)
    assert tofu_privleak(0.2, auc_retain=0.6) == pytest.approx(100.0, abs=1e-6)
    with pytest.raises(TypeError):
        tofu_privleak(0.9)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="auc_retain is required"):
        tofu_privleak(0.9, auc_retain=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="auc_unlearned = 1.5"):
        tofu_privleak(1.5, auc_retain=0.5)


def test_relative_difference() -> None:
    # (3 - 2)/2 * 100 = 50
    assert relative_difference(3.0, 2.0) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="reference = 0"):
        relative_difference(1.0, 0.0)


def test_memorized_forget_set_gives_auc_one_end_to_end() -> None:
    rng = np.random.default_rng(0)
    forget = [torch.tensor(-rng.uniform(0.0, 0.1, 6)) for _ in range(4)]  # high log p
    holdout = [torch.tensor(-rng.uniform(2.0, 3.0, 6)) for _ in range(4)]
    assert mia_auc(min_k_scores(forget), min_k_scores(holdout)) == 1.0


def test_roc_auc_hand_computed_ties_and_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    from constrained_unlearn.evaluation.metrics import roc_auc

    # positives {0.8, 0.4}, negatives {0.4, 0.1}: pairs (0.8>0.4) 1, (0.8>0.1) 1,
    # (0.4=0.4) 1/2, (0.4>0.1) 1  →  3.5 / 4
    labels, scores = [1, 0, 1, 0], [0.8, 0.4, 0.4, 0.1]
    assert roc_auc(labels, scores) == 0.875
    assert roc_auc([True, False], [0.1, 0.9]) == 0.0
    assert roc_auc([1, 0, 1, 0], [1.0, 1.0, 1.0, 1.0]) == 0.5
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=300)
    s = np.round(rng.normal(size=300) + y, 1)  # rounded: many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-15)
    for bad, match in (
        (([1, 1], [0.1, 0.2]), "both classes"),
        (([1, 2], [0.1, 0.2]), "0 or 1"),
        (([1, 0, 1], [0.1, 0.2]), "shape"),
    ):
        with pytest.raises(ValueError, match=match):
            roc_auc(*bad)
