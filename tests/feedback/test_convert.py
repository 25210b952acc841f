import pytest
import torch
from torch import nn

from bpgrid.feedback import (
    FeedbackConv2d,
    FeedbackLinear,
    alignment_stats,
    convert,
    convertible_layers,
)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Sequential(nn.Linear(4 * 6 * 6, 16), nn.ReLU()), nn.Linear(16, 3),
    )


def test_convert_all_keeps_outputs_and_changes_types():
    net = _net()
    x = torch.randn(2, 1, 6, 6)
    before = net(x)
    convert(net, "usf")
    assert isinstance(net[0], FeedbackConv2d) and isinstance(net[3][0], FeedbackLinear)
    assert isinstance(net[4], FeedbackLinear)
    assert all(m.rule.name == "usf" for m in net.modules() if hasattr(m, "rule"))
    assert torch.equal(net(x), before)


def test_convert_last_k_layers():
    net = convert(_net(), "rndf", layers=2, sigma=0.1)
    assert type(net[0]) is nn.Conv2d
    assert net[3][0].rule.name == "rndf" and net[4].rule.sigma == 0.1


def test_convert_named_layers_and_errors():
    net = _net()
    assert convertible_layers(net) == ["0", "3.0", "4"]
    convert(net, "frsf", layers=["3.0"], flip_prob=0.5)
    assert type(net[4]) is nn.Linear and net[3][0].rule.flip_prob == 0.5
    with pytest.raises(ValueError, match=r"no convertible layer named \['9'\]"):
        convert(net, "usf", layers=["9"])
    with pytest.raises(ValueError, match="has 3 convertible layers"):
        convert(net, "usf", layers=4)
    with pytest.raises(ValueError, match="unknown feedback rule"):
        convert(net, "nope")


def test_convert_refuses_grouped_conv():
    with pytest.raises(ValueError, match="groups=1"):
        convert(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), "usf")


def test_converted_kp_starts_from_its_own_random_v_around_the_copied_weight():
    net = convert(_net(), "kp", layers=1, sigma=0.05)
    layer = net[4]
    layer(torch.randn(3, 16, requires_grad=True)).sum().backward()
    v = layer.feedback_weight()
    assert abs(v.std().item() - 0.05) < 0.02
    assert not torch.allclose(v, layer.weight)


def test_alignment_stats_collects_host_values_per_layer():
    net = convert(_net(), "usf", alignment=True)
    net(torch.randn(2, 1, 6, 6)).sum().backward()
    stats = alignment_stats(net)
    assert set(stats) == {"0", "3.0", "4"}
    assert stats["4"]["sign_concordance"] == 1.0
    assert set(stats["4"]) == {"grad_angle", "weight_angle", "sign_concordance"}
    assert "grad_angle" not in stats["0"]  # the input needs no gradient, so none is sent
