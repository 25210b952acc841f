import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bpgrid.feedback import FeedbackConv2d, FeedbackLinear
from bpgrid.models import FC, Conv, FeedbackNet, Pool, Pool2d
from bpgrid.models.net import select_layers
from bpgrid.models.spec import weight_layer_names

LAYERS = (Conv(4, 3, padding=1), Pool("max", 2, 2), Conv(6, 3), FC(8), FC(3))


def test_weight_layer_names_count_convs_and_fcs_separately():
    assert weight_layer_names(LAYERS) == ["conv1", "conv2", "fc1", "fc2"]


@pytest.mark.parametrize("norm, affine", [("bn", False), ("bn_affine", True)])
def test_norm_after_every_weight_layer_but_the_last_before_the_nonlinearity(norm, affine):
    net = FeedbackNet(LAYERS, (2, 8, 8), norm=norm)
    names = [n for n, _ in net.named_children()]
    assert names == ["conv1", "conv1_norm", "conv1_act", "pool1", "conv2", "conv2_norm",
                     "conv2_act", "flatten", "fc1", "fc1_norm", "fc1_act", "fc2"]
    assert type(net.conv1_norm) is nn.BatchNorm2d and type(net.fc1_norm) is nn.BatchNorm1d
    assert (net.conv1_norm.num_features, net.conv2_norm.num_features,
            net.fc1_norm.num_features) == (4, 6, 8)
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 3 and all(m.affine is affine for m in norms)
    assert sum(p.numel() for m in norms for p in m.parameters()) == (2 * (4 + 6 + 8) if affine
                                                                     else 0)


def test_no_norm_by_default():
    net = FeedbackNet(LAYERS, (2, 8, 8))
    assert not [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert net.output_shape == (3,) and net(torch.randn(2, 2, 8, 8)).shape == (2, 3)


def test_layers_use_the_rule_or_bp():
    net = FeedbackNet(LAYERS, (2, 8, 8), rule="usf", feedback_layers=["conv2", "fc2"],
                      alignment=True)
    assert isinstance(net.conv1, FeedbackConv2d) and isinstance(net.fc2, FeedbackLinear)
    assert [net.weight_layer(n).rule.name for n in net.weight_layers] == [
        "bp", "usf", "bp", "usf"]
    assert [net.weight_layer(n).alignment for n in net.weight_layers] == [
        False, True, False, True]


def test_select_layers():
    names = ["conv1", "fc1", "fc2"]
    assert select_layers(names, "all") == names
    assert select_layers(names, 2) == ["fc1", "fc2"] and select_layers(names, 0) == []
    assert select_layers(names, ["fc2", "conv1"]) == ["conv1", "fc2"]
    with pytest.raises(ValueError, match=r"has 3 weight layers"):
        select_layers(names, 4, "weight")
    with pytest.raises(ValueError, match=r"no weight layer named \['fc9'\]"):
        select_layers(names, ["fc9"], "weight")
    with pytest.raises(ValueError, match="'all', an int or a list"):
        select_layers(names, "last")


def test_pool2d_pads_right_and_bottom_with_zeros():
    x = torch.randn(2, 3, 8, 8)
    pool = Pool2d("avg", 3, 2, pad_right_bottom=1)
    assert torch.equal(pool(x), F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 3, 2))
    assert pool(x).shape[-2:] == (4, 4)
    assert torch.equal(Pool2d("max", 2, 2)(x), F.max_pool2d(x, 2, 2))


@pytest.mark.parametrize("kw, match", [
    ({"norm": "ln"}, "unknown norm 'ln'; valid choices: none, bn, bn_affine"),
    ({"activation": "gelu"}, "unknown activation 'gelu'; valid choices: relu, tanh"),
    ({"dropout": 1.0}, "dropout must lie in"),
])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        FeedbackNet(LAYERS, (2, 8, 8), **kw)


def test_input_that_does_not_fit():
    with pytest.raises(ValueError, match=r"\(12,\) does not fit.*conv1 needs \(channels, "
                                         r"height, width\)"):
        FeedbackNet(LAYERS, (12,))
    with pytest.raises(ValueError, match=r"conv2 \(3x3/1, padding 0\) gets 1x1 .* -1x-1"):
        FeedbackNet(LAYERS, (2, 3, 3))
    with pytest.raises(ValueError, match="conv1 dropout must lie in"):
        FeedbackNet((Conv(2, 1, dropout=2.0), FC(1)), (1, 2, 2))
