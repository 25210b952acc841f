import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bpgrid.feedback import FeedbackConv2d, FeedbackLinear, alignment_stats, make_rule
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


# ---------------------------------------------------------------- weight mirror and kp in a net

WM = {"sigma": 0.1, "noise_amplitude": 0.5, "mirror_lr": 0.2, "decay": 0.05, "mirror_batch": 7}


def _mirrored(v, w, fan_in, x):
    """The mirror phase's closed form: (1-λ)V + (η/n)·W XᵀX, X the noise of (n, fan_in)."""
    n = x.shape[0]
    return (1 - WM["decay"]) * v + WM["mirror_lr"] / n * (w.reshape(-1, fan_in) @ x.T @ x
                                                            ).reshape(v.shape)


@pytest.mark.parametrize("arch", ["fc", "conv"])
def test_weight_mirror_nets_closed_form_over_two_sgd_steps(arch):
    """Each training step: one mirror phase per layer (noise drawn in layer order), then
    δ_{l-1} = (δ_l V_l) ∘ f'(a_{l-1}) with that V, and W's gradients as backpropagation's."""
    torch.set_default_dtype(torch.float64)
    try:
        layers, shape = (((FC(7), FC(6), FC(3)), (5,)) if arch == "fc" else
                         ((Conv(3, 3, padding=1), Pool("max", 2, 2), Conv(4, 3), FC(3)),
                          (2, 8, 8)))
        net = FeedbackNet(layers, shape, rule=make_rule("wm", **WM))
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        x, y = torch.randn(4, *shape), torch.tensor([0, 2, 1, 2])
        for _ in range(2):
            weights = {n: net.weight_layer(n).weight.detach().clone() for n in net.weight_layers}
            v_before = {n: net.weight_layer(n).feedback_matrix.clone() for n in net.weight_layers}
            seed = int(torch.randint(2**31, (1,)))
            torch.manual_seed(seed)
            opt.zero_grad()
            out = net(x)
            F.cross_entropy(out, y).backward()
            torch.manual_seed(seed)
            v = {}
            for n in net.weight_layers:
                layer = net.weight_layer(n)
                noise = WM["noise_amplitude"] * torch.randn(WM["mirror_batch"], layer.fan_in)
                v[n] = _mirrored(v_before[n], weights[n], layer.fan_in, noise)
                assert torch.allclose(layer.feedback_matrix, v[n], rtol=1e-12, atol=1e-15)
            e = (out.softmax(1) - F.one_hot(y, 3)) / 4
            expected = (_fc_grads if arch == "fc" else _conv_grads)(net, x, e, v)
            for n, g in expected.items():
                assert torch.allclose(net.weight_layer(n).weight.grad, g, rtol=1e-10,
                                      atol=1e-14), n
            opt.step()
    finally:
        torch.set_default_dtype(torch.float32)


def _fc_grads(net, x, e, v):
    a1 = x @ net.fc1.weight.T + net.fc1.bias
    a2 = a1.relu() @ net.fc2.weight.T + net.fc2.bias
    d2 = (e @ v["fc3"]) * (a2 > 0)
    d1 = (d2 @ v["fc2"]) * (a1 > 0)
    return {"fc3": e.T @ a2.relu(), "fc2": d2.T @ a1.relu(), "fc1": d1.T @ x}


def _conv_grads(net, x, e, v):
    a1 = F.conv2d(x, net.conv1.weight, net.conv1.bias, padding=1)
    p1, where = F.max_pool2d(a1.relu(), 2, 2, return_indices=True)
    a2 = F.conv2d(p1, net.conv2.weight, net.conv2.bias)
    d2 = (e @ v["fc1"]).view_as(a2) * (a2 > 0)
    g_p1 = F.conv_transpose2d(d2, v["conv2"])
    d1 = F.max_unpool2d(g_p1, where, 2, 2, output_size=a1.shape[-2:]) * (a1 > 0)
    return {"fc1": e.T @ a2.relu().flatten(1),
            "conv2": torch.nn.grad.conv2d_weight(p1, net.conv2.weight.shape, d2),
            "conv1": torch.nn.grad.conv2d_weight(x, net.conv1.weight.shape, d1, padding=1)}


@pytest.mark.parametrize("rule,options,lr,final", [
    ("wm", {"mirror_lr": 0.05, "decay": 0.05}, 0.05, 20),  # V follows W from noise
    ("kp", {"decay": 0.05}, 0.5, 70),  # V - W shrinks against the growing W
])
def test_weight_mirror_and_kp_report_a_shrinking_w_v_angle_over_training(rule, options, lr,
                                                                          final):
    net = FeedbackNet((FC(32), FC(16), FC(4)), (20,),
                      rule=make_rule(rule, **options), alignment=True)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    x, y = torch.randn(64, 20), torch.randint(0, 4, (64,))
    angles = []
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        angles.append(alignment_stats(net)["fc2"]["weight_angle"])
    assert angles[0] > 80 and angles[-1] < final
