import pytest
import torch
from torch import nn

from bpgrid import schedule as S

LIAO = {"lr_epochs": [1, 51, 61], "lr_values": [5e-4, 5e-5, 5e-6],
        "batch_size_epochs": [1, 4], "batch_sizes": [100, 500]}


@pytest.mark.parametrize("epoch,lr", [(1, 5e-4), (50, 5e-4), (51, 5e-5), (60, 5e-5),
                                      (61, 5e-6), (65, 5e-6)])
def test_liao_learning_rate_steps_times_scale(epoch, lr):
    assert S.learning_rate(LIAO, epoch, 100) == pytest.approx(lr * 100)
    assert S.learning_rate(LIAO, epoch, 0.01) == pytest.approx(lr * 0.01)


@pytest.mark.parametrize("epoch,size", [(1, 100), (3, 100), (4, 500), (65, 500)])
def test_batch_size_schedule_of_usf_bm(epoch, size):
    assert S.batch_size(LIAO, epoch) == size


def test_bn_ema_over_minibatches_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm1d(3, affine=False))
    S.freeze_bn_statistics(net)
    batches = [torch.randn(10, 3) * (k + 1) + k for k in range(20)]
    net.train()
    net(torch.randn(10, 3) * 50)  # a training step leaves the frozen statistics alone
    assert torch.equal(net[0].running_mean, torch.zeros(3))
    used = S.reestimate_bn(net, iter(batches), alpha=0.05)
    mean, var = batches[0].mean(0), batches[0].var(0)
    for b in batches[1:]:
        mean = 0.95 * mean + 0.05 * b.mean(0)
        var = 0.95 * var + 0.05 * b.var(0)
    assert used == 20
    assert torch.allclose(net[0].running_mean, mean, atol=1e-6)
    assert torch.allclose(net[0].running_var, var, atol=1e-5)
    assert net[0].momentum == 0.0  # frozen again for the next epoch's training


def test_bn_ema_uses_only_the_given_batches():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    used = S.reestimate_bn(net, (torch.randn(4, 2) for _ in range(3)), alpha=0.05)
    assert used == 3
