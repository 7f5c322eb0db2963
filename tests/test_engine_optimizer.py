"""The engine's default optimiser: AdamW, fused where the parameters allow it."""

from __future__ import annotations

import torch

from constrained_unlearn.engine.runtime import adamw, build_optimizer


def _step(opt_factory) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = opt_factory(list(model.parameters()))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def test_fused_on_dense_cpu_parameters_and_the_same_update():
    model = torch.nn.Linear(4, 3)
    opt = build_optimizer(model, None, lr=1e-2)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"] is True
    assert opt.defaults["weight_decay"] == 0.01  # torch's AdamW default, as before
    fused = _step(lambda p: adamw(p, lr=1e-2))
    plain = _step(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.01, foreach=False))
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_not_fused_where_a_parameter_cannot_be():
    params = [
        torch.nn.Parameter(torch.zeros(2, dtype=torch.float32)),
        torch.nn.Parameter(torch.zeros(2, dtype=torch.float32, device="meta")),
    ]
    assert adamw(params, lr=1e-3).defaults["fused"] is None
