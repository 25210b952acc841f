import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from bpgrid.arrays.net import ArrayNet
from bpgrid.data import Split
from bpgrid.evaluation import evaluate, freeze_bn_statistics, reestimate_bn
from bpgrid.models import FC, FeedbackNet

CPU = torch.device("cpu")


def array_of_linear(inputs: int, outputs: int, members: int = 2) -> ArrayNet:
    """An array of linear nets (one FC layer), each member drawn with its own seed."""
    nets = []
    for seed in range(members):
        torch.manual_seed(seed)
        nets.append(FeedbackNet((FC(outputs),), (inputs,)))
    return ArrayNet(nets, [torch.Generator() for _ in nets])


def test_regression_error_is_each_members_mean_squared_error_per_output_over_every_sample():
    """1001 samples at evaluation batches of 1000: the lone last sample counts too."""
    net = array_of_linear(2, 3)
    x, y = torch.randn(1001, 2), torch.randn(1001, 3)
    with torch.no_grad():
        want = [((net.fc1.weight[k] @ x.T).T + net.fc1.bias[k] - y).pow(2).sum().item()
                / (1001 * 3) for k in range(2)]
    got = evaluate(net, Split(x, y), CPU, classification=False)
    assert got == pytest.approx(want) and got[0] != pytest.approx(got[1])


def test_classification_error_in_percent_the_same_from_a_split_or_a_streamed_dataset():
    net = array_of_linear(4, 3)
    x, y = torch.randn(1001, 4), torch.randint(0, 3, (1001,))
    with torch.no_grad():
        want = [100.0 * ((x @ net.fc1.weight[k].T + net.fc1.bias[k]).argmax(1) != y).sum().item()
                / 1001 for k in range(2)]
    assert evaluate(net, Split(x, y), CPU, classification=True) == pytest.approx(want)
    assert evaluate(net, TensorDataset(x, y), CPU, classification=True) == pytest.approx(want)
    assert not net.training


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
