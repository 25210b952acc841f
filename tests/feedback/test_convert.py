import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_small, resnet18

from bpgrid.feedback import (
    FeedbackConv1d,
    FeedbackConv2d,
    FeedbackLinear,
    UnconvertedWarning,
    alignment_stats,
    convert,
    convertible_layers,
    plan,
    sign,
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
    convert(net, "usf", verbose=False)
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


def test_convert_keeps_grouped_conv_options():
    net = convert(nn.Sequential(nn.Conv2d(4, 6, 3, groups=2, padding="same", dilation=2,
                                          padding_mode="reflect")), "usf", verbose=False)
    layer = net[0]
    assert isinstance(layer, FeedbackConv2d)
    assert (layer.groups, layer.padding, layer.dilation, layer.padding_mode) == (
        2, "same", (2, 2), "reflect")


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


# ---------------------------------------------------------------- models from outside bpgrid

def test_resnet18_every_conv_and_the_fc_are_converted_without_warning(capsys):
    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=10).eval()
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    x = torch.randn(2, 3, 32, 32)
    before = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert(model, "usf")
    assert capsys.readouterr().out == (
        "convert: usf on 21 of 21 convertible layers (20 Conv2d, 1 Linear)\n")
    assert len(convs) == 20
    assert [n for n, m in model.named_modules() if isinstance(m, FeedbackConv2d)] == convs
    assert isinstance(model.fc, FeedbackLinear)
    assert torch.equal(model(x), before)
    model.train()
    model(x).sum().backward()
    block = model.layer2[0]
    assert torch.equal(block.downsample[0].feedback_weight(), sign(block.downsample[0].weight))
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_mobilenet_v3_small_depthwise_convs_are_converted_and_send_v():
    torch.manual_seed(0)
    model = mobilenet_v3_small(weights=None).eval()
    depthwise = [n for n, m in model.named_modules()
                 if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1]
    x = torch.randn(2, 3, 64, 64)
    before = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conversion = plan(model, "rndf")
        convert(model, "rndf", verbose=False)
    assert len(depthwise) == 11 and len(conversion.converted) == 54
    assert conversion.kinds == {"Conv2d": 52, "Linear": 2} and not conversion.unsupported
    for name in depthwise:
        layer = model.get_submodule(name)
        assert isinstance(layer, FeedbackConv2d) and layer.groups == layer.in_channels
        assert layer.feedback_matrix.shape == layer.weight.shape  # (C, 1, k, k)
    assert torch.allclose(model(x), before, atol=1e-6)

    model.train()
    model(x).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # a depthwise layer's input gradient is the grouped transposed conv with V
    layer = model.get_submodule(depthwise[1])
    h = torch.randn(2, layer.in_channels, 9, 9, requires_grad=True)
    out = F.conv2d(h, layer.feedback_matrix, None, layer.stride, layer.padding, layer.dilation,
                   layer.groups)
    g = torch.randn_like(out)
    (twin,) = torch.autograd.grad(out, h, g)
    (ours,) = torch.autograd.grad(layer(h), h, g)
    assert torch.allclose(ours, twin)


def test_conv1d_net_is_converted():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(3, 8, 5, padding=2), nn.ReLU(),
                        nn.Conv1d(8, 8, 3, groups=4, padding="same"), nn.ReLU(),
                        nn.Flatten(), nn.Linear(8 * 20, 4))
    x = torch.randn(2, 3, 20)
    before = net(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert(net, "frsf", verbose=False)
    assert [type(net[i]) for i in (0, 2, 5)] == [FeedbackConv1d, FeedbackConv1d, FeedbackLinear]
    assert net[2].groups == 4 and net[2].padding == "same"
    assert torch.equal(net(x), before)
    net(x).sum().backward()
    assert net[0].weight.grad is not None


def _encoder():
    torch.manual_seed(0)
    return nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)


def test_transformer_encoder_layer_warns_once_naming_what_stays_on_backprop():
    layer = _encoder()
    x = torch.randn(3, 5, 16)
    before = layer(x)
    with pytest.warns(UnconvertedWarning) as record:
        convert(layer, "usf", example_input=x, verbose=False)
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("convert: 2 module(s) left on backprop")
    assert "self_attn (MultiheadAttention: in_proj_weight)" in message
    assert "self_attn.out_proj (MultiheadAttention reads its weight directly)" in message
    assert isinstance(layer.linear1, FeedbackLinear) and isinstance(layer.linear2, FeedbackLinear)
    assert not isinstance(layer.self_attn.out_proj, FeedbackLinear)
    assert torch.allclose(layer(x), before, atol=1e-6)
    layer(x).sum().backward()
    assert torch.equal(layer.linear2.feedback_weight(), sign(layer.linear2.weight))


def test_strict_refuses_before_changing_anything():
    layer = _encoder()
    with pytest.raises(ValueError, match=r"self_attn\.out_proj \(MultiheadAttention reads"):
        convert(layer, "usf", strict=True)
    assert type(layer.linear1) is nn.Linear


def test_modules_without_a_feedback_version_are_named_with_why():
    class Scaled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    model = nn.ModuleDict({
        "emb": nn.Embedding(10, 4), "up": nn.ConvTranspose2d(2, 3, 2), "rnn": nn.LSTM(4, 5),
        "scaled": Scaled(4, 4), "lazy": nn.LazyLinear(3), "conv": nn.Conv2d(2, 2, 3),
        "norm": nn.LayerNorm(4), "bn": nn.BatchNorm2d(2), "fc": nn.Linear(4, 2)})
    conversion = plan(model, "usf")
    assert conversion.converted == ["conv", "fc"]
    assert conversion.unsupported == {
        "emb": "Embedding: weight", "up": "ConvTranspose2d: weight",
        "rnn": "LSTM: weight_ih_l0, weight_hh_l0",
        "scaled": "a Linear subclass with its own forward",
        "lazy": "lazy layer, not initialized yet: run a forward pass first"}
    with pytest.warns(UnconvertedWarning, match="5 module"):
        convert(model, "usf", verbose=False)
    assert type(model["up"]) is nn.ConvTranspose2d and type(model["scaled"]) is Scaled


def test_example_input_finds_layers_whose_weight_is_read_directly():
    class Direct(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj, self.head = nn.Linear(4, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.head(F.linear(x, self.proj.weight))

    model = Direct()
    with pytest.warns(UnconvertedWarning, match=r"proj \(never called in the forward pass"):
        convert(model, "usf", example_input=torch.randn(2, 4), verbose=False)
    assert type(model.proj) is nn.Linear and isinstance(model.head, FeedbackLinear)


def test_report_says_what_was_converted_and_kept(capsys):
    convert(_net(), "rndf", layers=1)
    assert capsys.readouterr().out == (
        "convert: rndf on 1 of 3 convertible layers (1 Linear)\n"
        "  left on backprop by the layers choice: 0, 3.0\n")
