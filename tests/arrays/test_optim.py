"""bpgrid/arrays/optim.py: member k of an array optimizer steps as its own torch optimizer (SGD,
bpgrid's BatchManhattan, Adam) with its own hyper-parameters, and its state converts to and from
that optimizer's state_dict."""

from __future__ import annotations

import pytest
import torch

from bpgrid.arrays.optim import build_array_optimizer
from bpgrid.optim import build_optimizer

MEMBERS = {
    "sgd": [{"name": "sgd", "momentum": 0.9, "weight_decay": 5e-4},
            {"name": "sgd", "momentum": 0.0, "weight_decay": 0.0},
            {"name": "sgd", "momentum": 0.5, "weight_decay": 1e-2}],
    **{f"bm{s}": [{"name": "bm", "setting": s, "momentum": m, "weight_decay": d}
                  for m, d in ((0.9, 5e-4), (0.0, 0.0), (0.5, 1e-2))] for s in (1, 2, 3)},
    "adam": [{"name": "adam", "betas": [0.9, 0.999], "weight_decay": 0.0},
             {"name": "adam", "betas": [0.5, 0.9], "weight_decay": 0.1},
             {"name": "adam", "betas": [0.8, 0.99], "weight_decay": 0.0}],
}
LRS = [0.1, 0.01, 0.05]
SHAPES = [(4, 3), (4,), (2, 3, 2, 2)]


def plain_and_array(kind: str):
    torch.manual_seed(0)
    cfgs = MEMBERS[kind]
    plain = [[torch.nn.Parameter(torch.randn(s, dtype=torch.float64)) for s in SHAPES]
             for _ in cfgs]
    stacked = [torch.nn.Parameter(torch.stack([p[i].detach() for p in plain]))
               for i in range(len(SHAPES))]
    optimizers = [build_optimizer(c, params, lr=lr)
                  for c, params, lr in zip(cfgs, plain, LRS, strict=True)]
    array = build_array_optimizer(cfgs, stacked)
    array.set_lr(LRS)
    return plain, optimizers, stacked, array


def step(plain, optimizers, stacked, array, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    grads = [torch.randn(len(plain), *s, generator=g, dtype=torch.float64) for s in SHAPES]
    grads[0][1, 0, 0] = 0.0  # Batch Manhattan's sign(0) = 0
    for p, grad in zip(stacked, grads, strict=True):
        p.grad = grad.clone()
    array.step()
    for k, (params, optimizer) in enumerate(zip(plain, optimizers, strict=True)):
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad[k].clone()
        optimizer.step()


@pytest.mark.parametrize("kind", MEMBERS)
def test_each_member_steps_as_its_own_optimizer(kind):
    plain, optimizers, stacked, array = plain_and_array(kind)
    for seed in range(6):
        step(plain, optimizers, stacked, array, seed)
    for k, params in enumerate(plain):
        for p, s in zip(params, stacked, strict=True):
            torch.testing.assert_close(s[k], p.detach(), rtol=1e-12, atol=1e-14)
    assert not torch.equal(stacked[0][0], stacked[0][1])


@pytest.mark.parametrize("kind", MEMBERS)
def test_a_members_state_moves_to_another_array_through_its_plain_state_dict(kind):
    plain, optimizers, stacked, array = plain_and_array(kind)
    for seed in range(3):
        step(plain, optimizers, stacked, array, seed)
    saved = array.member_state(2, optimizers[2])  # as its own torch optimizer saves it
    assert saved["param_groups"][0]["lr"] == LRS[2] and saved["state"]
    cfgs = MEMBERS[kind]
    moved = [torch.nn.Parameter(torch.stack([p[2].detach(), p[0].detach()])) for p in stacked]
    other = build_array_optimizer([cfgs[2], cfgs[0]], moved)  # member 2 now in slot 0
    other.set_lr([LRS[2], LRS[0]])
    template = build_optimizer(cfgs[2], [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64))
                                         for s in SHAPES])
    other.load_member_state(0, saved, template)
    g = torch.Generator().manual_seed(7)
    for a, b, shape in zip(moved, stacked, SHAPES, strict=True):
        grad = torch.randn(3, *shape, generator=g, dtype=torch.float64)
        a.grad, b.grad = torch.stack([grad[2], grad[0]]), grad
    other.step()
    array.step()
    for a, b in zip(moved, stacked, strict=True):
        torch.testing.assert_close(a[0], b[2], rtol=1e-12, atol=1e-14)


def test_members_share_the_optimizer_kind_and_batch_manhattans_setting():
    w = [torch.nn.Parameter(torch.zeros(2, 3))]
    with pytest.raises(ValueError, match="share their optimizer's name"):
        build_array_optimizer([MEMBERS["sgd"][0], MEMBERS["adam"][0]], w)
    with pytest.raises(ValueError, match="share their optimizer's setting, got \\[1, 3\\]"):
        build_array_optimizer([MEMBERS["bm1"][0], MEMBERS["bm3"][0]], w)


def test_a_new_lr_is_a_copy_into_the_tensor_the_step_reads():
    _, _, stacked, array = plain_and_array("sgd")
    lr = array.lr
    array.set_lr([1.0, 2.0, 3.0])
    assert array.lr is lr and array.lr.tolist() == [1.0, 2.0, 3.0]
