"""Loss functions against brute force and hand-computed values."""

import math

import pytest
import torch

from constrained_unlearn.losses import (
    kl_to_uniform_loss,
    margin_flattening_loss,
    masked_mean,
    negative_entropy_loss,
    next_token_alignment,
    npo_loss,
    sequence_log_prob,
    simnpo_loss,
    support_margin_loss,
    token_nll,
)


def brute_margin(logits, mask):
    total, count = 0.0, 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            if mask[b, t]:
                z = logits[b, t].tolist()
                total += (max(z) - sum(z) / len(z)) ** 2
                count += 1
    return total / count


def test_margin_hand_computed():
    # z = (1, 2, 6): max 6, mean 3 → margin 3 → loss 9;  z = (0, 0, 3): margin 2 → 4
    logits = torch.tensor([[[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]]])
    assert margin_flattening_loss(logits).item() == pytest.approx((9 + 4) / 2)
    only_second = torch.tensor([[False, True]])
    assert margin_flattening_loss(logits, only_second).item() == pytest.approx(4.0)


def test_margin_equals_brute_force():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11) * 3
    mask = torch.rand(3, 5) > 0.4
    assert margin_flattening_loss(logits, mask).item() == pytest.approx(
        brute_margin(logits, mask), rel=1e-6
    )


def test_margin_class_logits():
    logits = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # margins 1 and 0
    assert margin_flattening_loss(logits).item() == pytest.approx(0.5)


def test_margin_zero_iff_uniform():
    uniform = torch.full((2, 3, 7), 4.0)
    assert margin_flattening_loss(uniform).item() == 0.0
    not_uniform = uniform.clone()
    not_uniform[0, 0, 0] += 1e-3
    assert margin_flattening_loss(not_uniform).item() > 0


def test_masked_positions_contribute_nothing():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 9, requires_grad=True)
    mask = torch.tensor([[True, False, True, False], [False, False, True, True]])
    poisoned = logits.detach().clone()
    poisoned[~mask] = float("nan")
    poisoned.requires_grad_(True)
    a = margin_flattening_loss(logits, mask)
    b = margin_flattening_loss(poisoned, mask)
    assert a.item() == pytest.approx(b.item())
    a.backward()
    assert torch.all(logits.grad[~mask] == 0)
    b.backward()
    assert torch.all(poisoned.grad[~mask] == 0)


def test_gradient_near_uniform_margin_vs_entropy():
    # Near uniform with a large vocabulary the entropy's gradient vanishes, the margin's does not.
    v = 32000
    logits = torch.zeros(1, 1, v)
    logits[0, 0, 0] = 3.8 * v / (v - 1)  # margin exactly 3.8
    z1 = logits.clone().requires_grad_(True)
    margin_flattening_loss(z1).backward()
    z2 = logits.clone().requires_grad_(True)
    kl_to_uniform_loss(z2).backward()
    margin_grad = z1.grad.norm().item()
    entropy_grad = z2.grad.norm().item()
    # hand computation: ‖∇ m²‖ = 2 m sqrt(1 − 1/V) ≈ 7.6
    assert margin_grad == pytest.approx(2 * 3.8 * math.sqrt(1 - 1 / v), rel=1e-4)
    assert entropy_grad < 0.02
    assert margin_grad / entropy_grad > 300


def test_bf16_large_logits_finite():
    logits = (torch.randn(2, 3, 50) * 1e4).to(torch.bfloat16).requires_grad_(True)
    loss = margin_flattening_loss(logits)
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(logits.grad.float()).all()


def test_token_nll_matches_cross_entropy():
    torch.manual_seed(2)
    logits = torch.randn(2, 6, 5)
    labels = torch.randint(0, 5, (2, 6))
    labels[0, :3] = -100
    shifted, targets, mask = next_token_alignment(logits, labels)
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 5), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    assert token_nll(shifted, targets, mask).item() == pytest.approx(expected.item(), rel=1e-6)


def test_token_nll_hand_value():
    # logits (0, ln 3) → p = (1/4, 3/4); target 1 → −ln 0.75
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert token_nll(logits, torch.tensor([1])).item() == pytest.approx(-math.log(0.75))


def test_next_token_alignment_shifts_labels():
    logits = torch.zeros(1, 4, 3)
    labels = torch.tensor([[-100, -100, 2, 1]])
    shifted, targets, mask = next_token_alignment(logits, labels)
    assert shifted.shape == (1, 3, 3)
    assert mask.tolist() == [[False, True, True]]  # positions 1, 2 predict the answer tokens
    assert targets.tolist() == [[0, 2, 1]]


def test_entropy_losses_hand_values():
    logits = torch.zeros(1, 4)  # uniform over 4 → H = ln 4
    assert negative_entropy_loss(logits).item() == pytest.approx(-math.log(4))
    assert kl_to_uniform_loss(logits).item() == pytest.approx(0.0, abs=1e-7)


def test_sequence_log_prob_and_npo_hand_values():
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])
    targets = torch.tensor([[1, 0]])
    mask = torch.tensor([[True, True]])
    # log(3/4) + log(1/2)
    expected = math.log(0.75) + math.log(0.5)
    assert sequence_log_prob(logits, targets, mask).item() == pytest.approx(expected)
    assert sequence_log_prob(logits, targets, mask, normalize=True).item() == pytest.approx(
        expected / 2
    )
    # NPO with log ratio 0: −(2/β) log σ(0) = (2/β) ln 2
    lp = torch.tensor([-1.0])
    assert npo_loss(lp, lp, beta=0.5).item() == pytest.approx(4 * math.log(2))
    # SimNPO with avg log p = −1, β = 2, γ = 0: −(2/2) log σ(2)
    assert simnpo_loss(torch.tensor([-1.0]), beta=2.0).item() == pytest.approx(
        math.log(1 + math.exp(-2))
    )


def test_bad_inputs():
    with pytest.raises(ValueError, match="selects no position"):
        masked_mean(torch.ones(2), torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="beta"):
        npo_loss(torch.zeros(1), torch.zeros(1), beta=0)
    with pytest.raises(ValueError, match="last dimension"):
        margin_flattening_loss(torch.zeros(3, 1))


def test_token_nll_masked_positions_contribute_nothing():
    logits = torch.randn(1, 3, 4, requires_grad=True)
    poisoned = logits.detach().clone()
    poisoned[0, 0] = float("inf")
    poisoned.requires_grad_(True)
    targets = torch.tensor([[0, 1, 2]])
    mask = torch.tensor([[False, True, True]])
    loss = token_nll(poisoned, targets, mask)
    loss.backward()
    assert loss.item() == pytest.approx(token_nll(logits, targets, mask).item())
    assert torch.all(poisoned.grad[0, 0] == 0)


# -- flattening over a support (class forgetting) -----------------------------------------
def brute_support_margin(logits, support, gap):
    total = 0.0
    for z in logits.tolist():
        kept = [v for v, s in zip(z, support.tolist()) if s]
        excluded = [v for v, s in zip(z, support.tolist()) if not s]
        mean = sum(kept) / len(kept)
        hinge = max(0.0, max(excluded) - mean + gap) if excluded else 0.0
        total += (max(kept) - mean) ** 2 + hinge**2
    return total / len(logits)


def test_support_margin_hand_computed():
    support = torch.tensor([True, True, True, False])
    # S-logits (3, 1, 2): μ_S = 2, m_S = 1; excluded 0 − 2 + 1 < 0 → 1
    assert support_margin_loss(torch.tensor([[3.0, 1.0, 2.0, 0.0]]), support, gap=1.0).item() == 1
    # S-logits equal (1, 1, 1): m_S = 0; excluded 4 − 1 + 1 = 4 → 16
    assert support_margin_loss(torch.tensor([[1.0, 1.0, 1.0, 4.0]]), support, gap=1.0).item() == 16
    # the same row with gap 0 → (4 − 1)² = 9
    assert support_margin_loss(torch.tensor([[1.0, 1.0, 1.0, 4.0]]), support, gap=0.0).item() == 9


def test_support_margin_equals_brute_force_and_masks():
    torch.manual_seed(0)
    logits = torch.randn(4, 6, 9) * 3
    support = torch.rand(9) > 0.3
    support[0], support[1] = True, False
    mask = torch.rand(4, 6) > 0.4
    expected = brute_support_margin(logits[mask], support, gap=2.5)
    got = support_margin_loss(logits, support, mask, gap=2.5).item()
    assert got == pytest.approx(expected, rel=1e-6)
    # masked positions contribute nothing, even a poisoned one
    poisoned = logits.clone()
    poisoned[~mask] = float("nan")
    assert support_margin_loss(poisoned, support, mask, gap=2.5).item() == pytest.approx(got)


def test_support_margin_full_support_is_the_margin_loss():
    torch.manual_seed(1)
    logits = torch.randn(5, 7)
    everything = torch.ones(7, dtype=torch.bool)
    assert support_margin_loss(logits, everything).item() == pytest.approx(
        margin_flattening_loss(logits).item(), rel=1e-6
    )


def test_support_margin_zero_iff_flat_on_support_and_excluded_below():
    support = torch.tensor([True, True, True, False])
    target = torch.tensor([[2.0, 2.0, 2.0, -3.0]])  # excluded exactly gap = 5 below
    assert support_margin_loss(target, support, gap=5.0).item() == 0.0
    for index, delta in ((0, 1e-3), (3, 1e-3)):  # unflatten S, or raise the excluded logit
        moved = target.clone()
        moved[0, index] += delta
        assert support_margin_loss(moved, support, gap=5.0).item() > 0


def test_support_margin_bad_inputs():
    logits = torch.zeros(2, 3)
    with pytest.raises(TypeError, match="support must be a boolean tensor"):
        support_margin_loss(logits, torch.tensor([1, 1, 0]))
    with pytest.raises(ValueError, match=r"give one flag per class, shape \[3\]"):
        support_margin_loss(logits, torch.tensor([True, False]))
    with pytest.raises(ValueError, match="support selects no class"):
        support_margin_loss(logits, torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="gap must be a finite number ≥ 0"):
        support_margin_loss(logits, torch.tensor([True, True, False]), gap=float("nan"))


def test_kl_to_reference_and_dpo_hand_values():
    from constrained_unlearn.losses import dpo_loss, kl_to_reference

    p, q = [0.5, 0.25, 0.25], [0.25, 0.25, 0.5]
    logits = torch.tensor([[[math.log(v) for v in p], [0.0, 0.0, 0.0]]])
    ref = torch.tensor([[[math.log(v) for v in q], [5.0, 0.0, 0.0]]])
    mask = torch.tensor([[True, False]])
    expected = sum(a * math.log(a / b) for a, b in zip(p, q))  # = 0.25 log 2
    assert float(kl_to_reference(logits, ref, mask)) == pytest.approx(expected, rel=1e-6)
    assert float(kl_to_reference(logits, logits, mask)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="share the tokenizer"):
        kl_to_reference(logits, ref[..., :2], mask)
    zero = torch.zeros(2)
    assert float(dpo_loss(zero, zero, zero, zero, beta=0.5)) == pytest.approx(4 * math.log(2))
