import pytest
import torch

from bpgrid.losses import LOSSES, hinge, member_losses


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


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_member_losses_are_each_members_own_mean_loss(name):
    torch.manual_seed(0)
    out = torch.randn(3, 5, 4, dtype=torch.float64)
    target = (torch.randn(3, 5, 4, dtype=torch.float64) if name == "mse"
              else torch.randint(0, 4, (3, 5)))
    got = member_losses(LOSSES[name], out, target)
    want = torch.stack([LOSSES[name](out[k], target[k]) for k in range(3)])
    assert got.shape == (3,) and torch.allclose(got, want, rtol=1e-14, atol=0)
