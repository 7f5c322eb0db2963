"""The chunked, head-fused losses equal the naive ones, values and gradients (to 1e-6)."""

import pytest
import torch

from constrained_unlearn.losses import margin_flattening_loss, token_nll
from constrained_unlearn.losses.chunked import chunked_head_loss


@pytest.mark.parametrize("kind", ["margin", "nll"])
@pytest.mark.parametrize("chunk", [1, 5, 64])
@pytest.mark.parametrize("with_bias", [False, True])
def test_chunked_equals_naive(kind, chunk, with_bias):
    torch.manual_seed(0)
    n, h, v = 23, 8, 50
    hidden = torch.randn(n, h, requires_grad=True)
    weight = (torch.randn(v, h) * 0.5).requires_grad_(True)
    bias = torch.randn(v, requires_grad=True) if with_bias else None
    targets = torch.randint(0, v, (n,))
    params = [hidden, weight] + ([bias] if with_bias else [])

    chunked = chunked_head_loss(
        hidden, weight, kind=kind, targets=targets, bias=bias, chunk_size=chunk
    )
    logits = hidden @ weight.t() + (bias if with_bias else 0)
    naive = margin_flattening_loss(logits) if kind == "margin" else token_nll(logits, targets)
    assert chunked.item() == pytest.approx(naive.item(), rel=1e-6)
    for g_chunked, g_naive in zip(
        torch.autograd.grad(chunked, params), torch.autograd.grad(naive, params)
    ):
        torch.testing.assert_close(g_chunked, g_naive, rtol=1e-5, atol=1e-6)


def test_margin_gradient_hand_value():
    # one position, H = V = 2, W = I: z = h = (3, 1); m = 3 − 2 = 1; ∂m²/∂z = 2m(e₀ − ½) = (1, −1)
    hidden = torch.tensor([[3.0, 1.0]], requires_grad=True)
    loss = chunked_head_loss(hidden, torch.eye(2), kind="margin")
    (grad,) = torch.autograd.grad(loss, [hidden])
    assert loss.item() == pytest.approx(1.0)
    assert grad.tolist() == [[1.0, -1.0]]


def test_bad_input():
    with pytest.raises(ValueError, match="no supervised position"):
        chunked_head_loss(torch.zeros(0, 3), torch.zeros(4, 3), kind="margin")
    with pytest.raises(ValueError, match="needs targets"):
        chunked_head_loss(torch.zeros(2, 3), torch.zeros(4, 3), kind="nll")
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_head_loss(torch.zeros(2, 3), torch.zeros(4, 3), kind="margin", chunk_size=0)
