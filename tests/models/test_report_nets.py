"""The reference report's nets: sizes from its Tables 1, 3, 5, 8 and 11, options, untied convs."""

import pytest
import torch
from torch import nn

from bpgrid.feedback import FeedbackConv2d, UntiedConv2d
from bpgrid.models import build_model

CIFAR = (3, 32, 32)


def _build(name, shape=CIFAR, num_classes=10, **kw):
    return build_model(name, input_shape=shape, num_classes=num_classes, **kw)


def test_report_ds_and_dd_parameter_counts(n_params):
    ds, dd = _build("report_ds"), _build("report_dd")
    assert n_params(ds) == (3072 * 512 + 512) + (512 * 256 + 256) + (256 * 10 + 10)
    assert n_params(dd) == ((3072 * 512 + 512) + (512 * 512 + 512) + (512 * 256 + 256)
                            + (256 * 256 + 256) + (256 * 10 + 10))
    assert ds.weight_layers == ["fc1", "fc2", "fc3"]
    assert next(ds.named_children())[0] == "flatten"


def test_report_pg_is_poggios_net(layer_shapes, n_params):
    net = _build("report_pg")
    shapes = layer_shapes(net, torch.randn(2, *CIFAR))
    assert [shapes[f"pool{i}"] for i in (1, 2, 3)] == [(32, 16, 16), (64, 8, 8), (64, 4, 4)]
    assert n_params(net) == n_params(_build("liao_cifar"))


def test_report_pg_pooling_option():
    net = _build("report_pg", pooling=["max", "max", "max"])
    assert [net.get_submodule(f"pool{i}").kind for i in (1, 2, 3)] == ["max"] * 3
    with pytest.raises(ValueError, match="pool kind"):
        _build("report_pg", pooling=["max", "min", "avg"])
    with pytest.raises(ValueError, match="3 conv/pool stages"):
        _build("report_pg", pooling=["max"])


def test_report_pg_untied_parameter_count(n_params):
    net = _build("report_pg_untied")
    assert all(isinstance(net.get_submodule(f"conv{i}"), UntiedConv2d) for i in (1, 2, 3))
    # one 5x5 kernel (+ bias) per output position: 32x32, 16x16, 8x8 positions
    assert n_params(net) == ((32 * 32) * 32 * (3 * 25) + (32 * 32) * 32
                             + (16 * 16) * 64 * (32 * 25) + (16 * 16) * 64
                             + (8 * 8) * 64 * (64 * 25) + (8 * 8) * 64
                             + (64 * 4 * 4 * 128 + 128) + (128 * 10 + 10))


def test_report_pg_untied_chosen_layers(layer_shapes):
    net = _build("report_pg_untied", untied_layers=["conv2", "conv3"])
    assert type(net.conv1) is FeedbackConv2d
    assert isinstance(net.conv2, UntiedConv2d) and isinstance(net.conv3, UntiedConv2d)
    assert net.conv2.input_size == (16, 16) and net.conv3.input_size == (8, 8)
    assert layer_shapes(net, torch.randn(2, *CIFAR))["pool3"] == (64, 4, 4)
    pgr2_u = _build("report_pg_untied", untied_layers=["conv1", "conv2"])  # Table 8, PGR2-U
    assert type(pgr2_u.conv3) is FeedbackConv2d


@pytest.mark.parametrize("bad, match", [("some", "'all' or a list"), (["conv4"], "conv4")])
def test_report_pg_untied_rejects_unknown_layers(bad, match):
    with pytest.raises(ValueError, match=match):
        _build("report_pg_untied", untied_layers=bad)


def test_dropout_after_hidden_fc_and_conv_dropout():
    net = _build("report_pg", dropout=0.5, conv_dropout=0.1)
    children = dict(net.named_children())
    assert [n for n in children if n.endswith("_drop")] == [
        "conv1_drop", "conv2_drop", "conv3_drop", "fc1_drop"]
    assert children["fc1_drop"].p == 0.5 and children["conv2_drop"].p == 0.1
    names = list(children)
    assert names.index("conv1_drop") == names.index("conv1_act") + 1 < names.index("pool1")
    assert not [n for n, _ in _build("report_pg").named_children() if n.endswith("_drop")]


def test_tanh_activation():
    net = _build("report_pg", activation="tanh")
    acts = [m for n, m in net.named_children() if n.endswith("_act")]
    assert len(acts) == 4 and all(isinstance(a, nn.Tanh) for a in acts)


@pytest.mark.parametrize("k, rule", [(1, "rndf"), (2, "rndf"), (4, "kp")])
def test_report_dd_random_feedback_on_last_k_layers(k, rule):
    """DDR1/DDR2/DDR4 (R: fixed rndf) and their -U versions (R*: updated kp)."""
    net = _build("report_dd", feedback=rule, feedback_layers=k)
    rules = [net.get_submodule(n).rule.name for n in net.weight_layers]
    assert rules == ["bp"] * (5 - k) + [rule] * k
