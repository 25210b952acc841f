import pytest
import torch


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def _layer_shapes(net, x):
    """Shape (batch excluded) of the output of every named child, in order."""
    shapes = {}
    with torch.no_grad():
        for name, module in net.named_children():
            x = module(x)
            shapes[name] = tuple(x.shape[1:])
    return shapes


@pytest.fixture
def layer_shapes():
    return _layer_shapes


@pytest.fixture
def n_params():
    return lambda net: sum(p.numel() for p in net.parameters())
