import pytest
import torch
from torch import nn

from bpgrid.feedback import FeedbackLinear
from bpgrid.models import build_model


def test_small_cnn_fits_8x8_digits(layer_shapes, n_params):
    net = build_model("small_cnn", input_shape=(1, 8, 8), num_classes=10)
    shapes = layer_shapes(net, torch.randn(2, 1, 8, 8))
    assert [shapes[k] for k in ("conv1", "pool1", "conv2", "pool2", "fc1", "fc2")] == [
        (16, 8, 8), (16, 4, 4), (32, 4, 4), (32, 2, 2), (64,), (10,)]
    assert n_params(net) == ((3 * 3 * 1 * 16 + 16) + (3 * 3 * 16 * 32 + 32)
                             + (32 * 2 * 2 * 64 + 64) + (64 * 10 + 10))


def test_small_cnn_options():
    net = build_model("small_cnn", input_shape=(1, 8, 8), num_classes=3, channels=[4],
                      kernel_size=5, hidden=[])
    assert net.weight_layers == ["conv1", "fc1"] and net.conv1.padding == (2, 2)
    assert net.fc1.in_features == 4 * 4 * 4
    with pytest.raises(ValueError, match="odd kernel_size"):
        build_model("small_cnn", input_shape=(1, 8, 8), num_classes=3, kernel_size=2)


def test_small_cnn_too_small_input_names_the_sizes():
    with pytest.raises(ValueError, match=r"\(1, 2, 2\) does not fit.*pool2 .*1x1.*0x0"):
        build_model("small_cnn", input_shape=(1, 2, 2), num_classes=10)


def test_mlp_hidden_sizes():
    net = build_model("mlp", input_shape=(40,), num_classes=10, hidden=[100, 100])
    assert [(m.in_features, m.out_features) for m in net.children()
            if isinstance(m, FeedbackLinear)] == [(40, 100), (100, 100), (100, 10)]


def test_mlp_without_hidden_layers_is_one_linear_layer():
    net = build_model("mlp", input_shape=(30,), num_classes=10, hidden=[])
    assert len(net) == 1 and isinstance(net.fc1, FeedbackLinear)
    assert net(torch.randn(4, 30)).shape == (4, 10)


def test_mlp_flattens_image_input_and_uses_tanh():
    net = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[20],
                      activation="tanh")
    assert isinstance(net.flatten, nn.Flatten) and net.fc1.in_features == 64
    assert isinstance(net.fc1_act, nn.Tanh)
