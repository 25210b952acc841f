import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from bpgrid.data import Split
from bpgrid.evaluation import evaluate, freeze_bn_statistics, reestimate_bn

CPU = torch.device("cpu")


def test_regression_error_is_the_mean_squared_error_per_output_over_every_sample():
    """1001 samples at evaluation batches of 1000: the lone last sample counts too."""
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    x, y = torch.randn(1001, 2), torch.randn(1001, 3)
    with torch.no_grad():
        want = ((model(x) - y) ** 2).sum().item() / (1001 * 3)
    assert evaluate(model, Split(x, y), CPU, classification=False) == pytest.approx(want)


def test_classification_error_in_percent_the_same_from_a_split_or_a_streamed_dataset():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(1001, 4), torch.randint(0, 3, (1001,))
    with torch.no_grad():
        want = 100.0 * (model(x).argmax(1) != y).sum().item() / 1001
    assert evaluate(model, Split(x, y), CPU, classification=True) == pytest.approx(want)
    assert evaluate(model, TensorDataset(x, y), CPU, classification=True) == pytest.approx(want)
    assert not model.training


def test_bn_ema_over_minibatches_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm1d(3, affine=False))
    freeze_bn_statistics(net)
    batches = [torch.randn(10, 3) * (k + 1) + k for k in range(20)]
    net.train()
    net(torch.randn(10, 3) * 50)  # a training step leaves the frozen statistics alone
    assert torch.equal(net[0].running_mean, torch.zeros(3))
    used = reestimate_bn(net, iter(batches), alpha=0.05)
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
    used = reestimate_bn(net, (torch.randn(4, 2) for _ in range(3)), alpha=0.05)
    assert used == 3
