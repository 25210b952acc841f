import pytest
import torch

from bpgrid.losses import hinge


def test_hinge_by_hand():
    out = torch.tensor([[2.0, -0.5, 0.3], [0.0, 0.0, 1.5]])
    target = torch.tensor([0, 2])
    # sample 1: t = (+1,-1,-1): max(0,1-2)=0, max(0,1-0.5)=0.5, max(0,1+0.3)=1.3
    # sample 2: t = (-1,-1,+1): 1, 1, max(0,1-1.5)=0
    assert hinge(out, target).item() == pytest.approx((0 + 0.5 + 1.3 + 1 + 1 + 0) / 6)


def test_hinge_gradient_only_from_violating_margins():
    out = torch.tensor([[2.0, -3.0]], requires_grad=True)
    hinge(out, torch.tensor([0])).backward()
    assert torch.equal(out.grad, torch.zeros(1, 2))
