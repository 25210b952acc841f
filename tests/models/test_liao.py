"""Liao et al. Table 1: layer sizes and parameter counts worked out by hand."""

import pytest
import torch

from bpgrid.feedback import FeedbackConv2d, FeedbackLinear
from bpgrid.models import build_model


def _build(name, shape, num_classes, **kw):
    return build_model(name, input_shape=shape, num_classes=num_classes, **kw)


def test_liao_cifar_sizes_and_parameter_count(layer_shapes, n_params):
    net = _build("liao_cifar", (3, 32, 32), 10)
    shapes = layer_shapes(net, torch.randn(2, 3, 32, 32))
    # 2-pixel padding keeps 32, each pool (1-pixel right-bottom pad, 3x3/2) halves: 32->16->8->4
    assert [shapes[k] for k in ("conv1", "pool1", "conv2", "pool2", "conv3", "pool3")] == [
        (32, 32, 32), (32, 16, 16), (64, 16, 16), (64, 8, 8), (64, 8, 8), (64, 4, 4)]
    assert [net.get_submodule(f"pool{i}").kind for i in (1, 2, 3)] == ["max", "avg", "avg"]
    assert net.fc1.in_features == 64 * 4 * 4 and net.fc1.out_features == 128
    assert shapes["fc2"] == (10,)
    assert n_params(net) == ((5 * 5 * 3 * 32 + 32) + (5 * 5 * 32 * 64 + 64)
                             + (5 * 5 * 64 * 64 + 64) + (64 * 4 * 4 * 128 + 128)
                             + (128 * 10 + 10))


def test_liao_cifar100_has_100_outputs():
    assert _build("liao_cifar", (3, 32, 32), 100).fc2.out_features == 100


def test_liao_mnist_sizes_and_parameter_count(layer_shapes, n_params):
    net = _build("liao_mnist", (1, 28, 28), 10)
    shapes = layer_shapes(net, torch.randn(2, 1, 28, 28))
    # no padding: 28 -conv5-> 24 -pool2-> 12 -conv5-> 8 -pool2-> 4
    assert [shapes[k] for k in ("conv1", "pool1", "conv2", "pool2")] == [
        (20, 24, 24), (20, 12, 12), (50, 8, 8), (50, 4, 4)]
    assert n_params(net) == ((5 * 5 * 1 * 20 + 20) + (5 * 5 * 20 * 50 + 50)
                             + (50 * 4 * 4 * 500 + 500) + (500 * 10 + 10))


def test_liao_svhn_sizes_and_parameter_count(layer_shapes, n_params):
    net = _build("liao_svhn", (3, 32, 32), 10)
    shapes = layer_shapes(net, torch.randn(2, 3, 32, 32))
    # 32 -conv5-> 28 -pool2-> 14 -conv7-> 8 -pool2-> 4
    assert [shapes[k] for k in ("conv1", "pool1", "conv2", "pool2", "fc1")] == [
        (20, 28, 28), (20, 14, 14), (512, 8, 8), (512, 4, 4), (40,)]
    assert n_params(net) == ((5 * 5 * 3 * 20 + 20) + (7 * 7 * 20 * 512 + 512)
                             + (512 * 4 * 4 * 40 + 40) + (40 * 10 + 10))


def test_liao_others_sizes_and_parameter_count_for_102_classes(layer_shapes, n_params):
    net = _build("liao_others", (3, 119, 119), 102)
    shapes = layer_shapes(net, torch.randn(2, 3, 119, 119))
    # (119-9)/2+1 = 56 -pool-> 28 -conv5-> 24 -pool-> 12
    assert [shapes[k] for k in ("conv1", "pool1", "conv2", "pool2")] == [
        (48, 56, 56), (48, 28, 28), (128, 24, 24), (128, 12, 12)]
    # FC max(256, 3*102) = 306, FC 2*102, FC 102
    assert [shapes[k] for k in ("fc1", "fc2", "fc3")] == [(306,), (204,), (102,)]
    assert net.conv1.stride == (2, 2)
    assert n_params(net) == ((9 * 9 * 3 * 48 + 48) + (5 * 5 * 48 * 128 + 128)
                             + (128 * 12 * 12 * 306 + 306) + (306 * 204 + 204)
                             + (204 * 102 + 102))


@pytest.mark.parametrize("num_classes, sizes", [(17, (256, 34, 17)), (80, (256, 160, 80)),
                                                (86, (258, 172, 86))])
def test_liao_others_fc_sizes_follow_class_count(num_classes, sizes):
    net = _build("liao_others", (3, 119, 119), num_classes)
    assert tuple(net.get_submodule(f"fc{i}").out_features for i in (1, 2, 3)) == sizes


def test_liao_fc_parameter_count(n_params):
    net = _build("liao_fc", (1845,), 80)
    assert [type(m) for m in net.children()].count(FeedbackLinear) == 3
    assert "flatten" not in dict(net.named_children())
    assert n_params(net) == (1845 * 512 + 512) + (512 * 256 + 256) + (256 * 80 + 80)


@pytest.mark.parametrize("name", ["liao_mnist", "liao_svhn", "liao_others"])
def test_non_cifar_nets_have_no_padding(name):
    shape = {"liao_mnist": (1, 28, 28), "liao_svhn": (3, 32, 32)}.get(name, (3, 119, 119))
    net = _build(name, shape, 10)
    convs = [m for m in net.modules() if isinstance(m, FeedbackConv2d)]
    assert len(convs) == 2 and all(c.padding == (0, 0) for c in convs)
    assert all(m.pad_right_bottom == 0 for n, m in net.named_children() if n.startswith("pool"))
