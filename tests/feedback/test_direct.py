import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from bpgrid.feedback import DirectFeedback, FeedbackConv2d, alignment_stats, convert, make_rule
from bpgrid.feedback.functional import angle
from bpgrid.models import FC, Conv, FeedbackNet, Pool

FC_NET = (FC(7), FC(6), FC(3))
CONV_NET = (Conv(3, 3, padding=1), Pool("max", 2, 2), Conv(4, 3), FC(5), FC(3))


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def _batch(shape, n=4, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def _step(net, x, y):
    out = net(x)
    F.cross_entropy(out, y).backward()
    return out.detach()


def _error(out, y):
    """e = dLoss/d(output) for the mean cross-entropy: (softmax - one-hot) / N."""
    return (out.softmax(1) - F.one_hot(y, out.shape[1])) / len(y)


def test_b_is_uniform_with_nokland_auto_scale():
    torch.manual_seed(0)
    b = make_rule("dfa").direct_matrix(10, 2500, torch.empty(0))
    m = 1 / math.sqrt(2500)
    assert b.shape == (10, 2500) and b.abs().max() <= m
    assert abs(b.mean().item()) < 0.01 * m and b.var().item() == pytest.approx(m * m / 3, rel=0.03)
    fixed = make_rule("dfa", magnitude=0.3).direct_matrix(4, 9, torch.empty(0))
    assert fixed.abs().max() <= 0.3 and fixed.abs().max() > 0.2


def test_fc_net_closed_form():
    """δ_l = (e B_l) ∘ relu'(a_l), ΔW_l = δ_lᵀ h_{l-1}; the last layer gets e itself."""
    torch.manual_seed(0)
    net = FeedbackNet(FC_NET, (5,), rule="dfa")
    x, y = _batch((5,))
    out = _step(net, x, y)
    w1, w2 = net.fc1.weight, net.fc2.weight
    a1 = x @ w1.T + net.fc1.bias
    h1 = a1.relu()
    a2 = h1 @ w2.T + net.fc2.bias
    h2 = a2.relu()
    e = _error(out, y)
    assert not hasattr(net.fc1, "direct_feedback")  # its input is the data
    assert net.fc2.direct_feedback.shape == (3, 7) and net.fc3.direct_feedback.shape == (3, 6)
    d2 = (e @ net.fc3.direct_feedback) * (a2 > 0)
    d1 = (e @ net.fc2.direct_feedback) * (a1 > 0)
    for layer, delta, h in ((net.fc3, e, h2), (net.fc2, d2, h1), (net.fc1, d1, x)):
        assert torch.allclose(layer.weight.grad, delta.T @ h, rtol=1e-12, atol=1e-15)
        assert torch.allclose(layer.bias.grad, delta.sum(0), rtol=1e-12, atol=1e-15)


def test_conv_net_closed_form_through_max_pooling():
    torch.manual_seed(0)
    net = FeedbackNet(CONV_NET, (2, 8, 8), rule="dfa")
    x, y = _batch((2, 8, 8))
    out = _step(net, x, y)
    c1, c2, f1, f2 = net.conv1, net.conv2, net.fc1, net.fc2
    a1 = F.conv2d(x, c1.weight, c1.bias, padding=1)
    h1 = a1.relu()
    p1, where = F.max_pool2d(h1, 2, 2, return_indices=True)
    a2 = F.conv2d(p1, c2.weight, c2.bias)
    h2 = a2.relu().flatten(1)
    a3 = h2 @ f1.weight.T + f1.bias
    e = _error(out, y)
    d3 = (e @ f2.direct_feedback) * (a3 > 0)
    d2 = (e @ f1.direct_feedback).view_as(a2) * (a2 > 0)
    g_p1 = (e @ c2.direct_feedback).view_as(p1)
    d1 = F.max_unpool2d(g_p1, where, 2, 2, output_size=h1.shape[-2:]) * (a1 > 0)
    expected = {
        f2: (e.T @ a3.relu(), e.sum(0)),
        f1: (d3.T @ h2, d3.sum(0)),
        c2: (torch.nn.grad.conv2d_weight(p1, c2.weight.shape, d2), d2.sum((0, 2, 3))),
        c1: (torch.nn.grad.conv2d_weight(x, c1.weight.shape, d1, padding=1), d1.sum((0, 2, 3))),
    }
    for layer, (gw, gb) in expected.items():
        assert torch.allclose(layer.weight.grad, gw, rtol=1e-12, atol=1e-15)
        assert torch.allclose(layer.bias.grad, gb, rtol=1e-12, atol=1e-15)


def _segments(net):
    """Each weight layer with the modules after it up to the next weight layer (its block)."""
    blocks, current = [], None
    for name, module in net.named_children():
        if name in net.weight_layers:
            current = [name, [module]]
            blocks.append(current)
        elif current is not None:
            current[1].append(module)
    return [(name, nn.Sequential(*modules)) for name, modules in blocks]


@pytest.mark.parametrize("layers,shape", [(FC_NET, (5,)), (CONV_NET, (2, 8, 8))])
@pytest.mark.parametrize("norm", ["bn", "bn_affine"])
def test_with_batch_norm_each_block_backpropagates_b_e_through_its_own_layers(layers, shape,
                                                                              norm):
    """With BN the closed form is the block's own backward (BN, f', pooling) applied to B e."""
    torch.manual_seed(0)
    net = FeedbackNet(layers, shape, rule="dfa", norm=norm)
    x, y = _batch(shape)
    blocks = _segments(net)
    inputs = {}
    for name, _ in blocks:
        net.get_submodule(name).register_forward_pre_hook(
            lambda m, args, name=name: inputs.__setitem__(name, args[0].detach()))
    out = _step(net, x, y)
    e = _error(out, y)
    for i, (name, block) in enumerate(blocks):
        layer = net.get_submodule(name)
        if i + 1 < len(blocks):
            following = net.get_submodule(blocks[i + 1][0])
            grad_out = (e @ following.direct_feedback).view_as(inputs[blocks[i + 1][0]])
        else:
            grad_out = e
        params = [p for p in block.parameters() if p.requires_grad]
        expected = torch.autograd.grad(block(inputs[name]), params, grad_out)
        for p, g in zip(params, expected, strict=True):
            assert torch.allclose(p.grad, g, rtol=1e-10, atol=1e-14), name
        assert layer.weight.grad.abs().sum() > 0


def test_only_the_chosen_layers_send_b_e_the_others_backpropagate():
    torch.manual_seed(0)
    net = FeedbackNet(FC_NET, (5,), rule="dfa", feedback_layers=["fc3"])
    assert net.network_feedback.senders == ["fc3"] and net.fc2.rule.name == "bp"
    x, y = _batch((5,))
    out = _step(net, x, y)
    a1 = x @ net.fc1.weight.T + net.fc1.bias
    a2 = a1.relu() @ net.fc2.weight.T + net.fc2.bias
    e = _error(out, y)
    d2 = (e @ net.fc3.direct_feedback) * (a2 > 0)
    d1 = (d2 @ net.fc2.weight) * (a1 > 0)  # fc2 is bp: Wᵀδ
    assert torch.allclose(net.fc2.weight.grad, d2.T @ a1.relu(), rtol=1e-12)
    assert torch.allclose(net.fc1.weight.grad, d1.T @ x, rtol=1e-12)


def test_alignment_angles_against_backpropagation_and_unchanged_gradients():
    torch.manual_seed(0)
    net = FeedbackNet(CONV_NET, (2, 8, 8), rule="dfa", norm="bn", alignment=True)
    plain = FeedbackNet(CONV_NET, (2, 8, 8), rule="dfa", norm="bn")
    bp = FeedbackNet(CONV_NET, (2, 8, 8), rule="bp", norm="bn")
    plain.load_state_dict(net.state_dict())
    bp.load_state_dict({k: v for k, v in net.state_dict().items() if "direct" not in k})
    x, y = _batch((2, 8, 8))
    received = {}
    for name in net.network_feedback.senders:
        net.get_submodule(name).register_full_backward_hook(
            lambda m, gin, gout, name=name: received.__setitem__(name, gin[0]))
    out = _step(net, x, y)
    _step(plain, x, y)
    _step(bp, x, y)
    for p, q in zip(net.parameters(), plain.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)  # the extra backprop pass changes nothing
    stats = alignment_stats(net)
    assert set(stats) == {"conv1", "conv2", "fc1", "fc2"}
    assert set(stats["conv1"]) == {"update_angle"}  # sends nothing: its input is the data
    e = _error(out, y)
    for name in net.weight_layers:
        layer, twin = net.get_submodule(name), bp.get_submodule(name)
        assert stats[name]["update_angle"] == pytest.approx(
            angle(layer.weight.grad, twin.weight.grad).item(), abs=1e-9)
        if name in net.network_feedback.senders:  # B e against the Wᵀδ it replaced
            sent = (e @ layer.direct_feedback).view_as(received[name])
            assert stats[name]["grad_angle"] == pytest.approx(
                angle(sent, received[name]).item(), abs=1e-9)
    assert stats["fc2"]["update_angle"] == pytest.approx(0, abs=1e-6)  # e h: exact
    assert stats["conv1"]["update_angle"] > 10


def test_b_is_saved_loaded_and_moved_with_the_net():
    torch.manual_seed(0)
    net = FeedbackNet(CONV_NET, (2, 8, 8), rule="dfa")
    torch.manual_seed(5)
    fresh = FeedbackNet(CONV_NET, (2, 8, 8), rule="dfa")
    assert not torch.equal(fresh.fc1.direct_feedback, net.fc1.direct_feedback)
    fresh.load_state_dict(net.state_dict())
    x, y = _batch((2, 8, 8))
    _step(net, x, y)
    _step(fresh, x, y)
    for p, q in zip(net.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)
    assert net.to(torch.float32).conv2.direct_feedback.dtype == torch.float32


def test_building_the_net_leaves_the_random_stream_as_b_draws_it():
    """The sizing pass draws nothing: the net's parameters are those of the same net with bp,
    and the random stream after it is the bp net's advanced by exactly B's draws."""
    torch.manual_seed(0)
    dfa = FeedbackNet(CONV_NET, (2, 8, 8), rule="dfa", norm="bn")
    after_dfa = torch.rand(3)
    torch.manual_seed(0)
    bp = FeedbackNet(CONV_NET, (2, 8, 8), rule="bp", norm="bn")
    for name in dfa.network_feedback.senders:
        torch.empty(dfa.get_submodule(name).direct_feedback.shape).uniform_()
    assert torch.equal(torch.rand(3), after_dfa)
    state = dfa.state_dict()
    assert {k for k in state if k not in bp.state_dict()} == {
        f"{name}.direct_feedback" for name in ("conv2", "fc1", "fc2")}
    for k, v in bp.state_dict().items():  # BN statistics too: the sizing pass left them
        assert torch.equal(state[k], v), k


def test_a_loss_that_bypasses_the_output_is_refused():
    torch.manual_seed(0)
    net = FeedbackNet(FC_NET, (5,), rule="dfa")
    hidden = {}
    net.fc2.register_forward_hook(lambda m, args, out: hidden.__setitem__("fc2", out))
    x, _ = _batch((5,))
    net(x)
    with pytest.raises(RuntimeError, match="reached fc2's input without passing the network's"):
        hidden["fc2"].sum().backward()


def test_eval_and_no_grad_passes_are_plain_and_feedback_weight_says_why():
    torch.manual_seed(0)
    net = FeedbackNet(FC_NET, (5,), rule="dfa")
    twin = FeedbackNet(FC_NET, (5,), rule="bp")
    twin.load_state_dict({k: v for k, v in net.state_dict().items() if "direct" not in k})
    x, _ = _batch((5,))
    with torch.no_grad():
        assert torch.equal(net(x), twin(x))
    with pytest.raises(RuntimeError, match="dfa has no per-layer V"):
        net.fc2.feedback_weight()


def test_convert_installs_dfa_on_any_model_from_an_example_batch(capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    with pytest.raises(ValueError, match="dfa is a network rule: convert.. needs example_input"):
        convert(model, "dfa")
    x, y = _batch((5,))
    convert(model, "dfa", example_input=x)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  dfa: the output error (3 values a sample) is sent to the inputs of 1 layers: 2")
    assert isinstance(model.network_feedback, DirectFeedback)
    out = _step(model, x, y)
    a1 = x @ model[0].weight.T + model[0].bias
    d1 = (_error(out, y) @ model[2].direct_feedback) * (1 - a1.tanh() ** 2)
    assert torch.allclose(model[0].weight.grad, d1.T @ x, rtol=1e-12)
    with pytest.raises(ValueError, match="already has network feedback"):
        convert(model, "dfa", example_input=x, verbose=False)


def test_dfa_on_resnet18_sends_e_to_every_layer_but_the_first():
    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=10)
    bp = resnet18(weights=None, num_classes=10)
    bp.load_state_dict(model.state_dict())
    x, y = _batch((3, 32, 32), n=2, classes=10)
    convert(model, "dfa", example_input=x, verbose=False)
    senders = model.network_feedback.senders
    assert len(senders) == 20 and "conv1" not in senders and senders[-1] == "fc"
    assert model.layer1[0].conv1.direct_feedback.shape == (10, 64 * 8 * 8)
    assert isinstance(model.layer3[0].downsample[0], FeedbackConv2d)
    _step(model, x, y)
    _step(bp, x, y)
    assert torch.allclose(model.fc.weight.grad, bp.fc.weight.grad)  # e h: as backprop
    assert not torch.allclose(model.layer4[1].conv2.weight.grad, bp.layer4[1].conv2.weight.grad)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_a_deep_copy_runs_dfa_on_its_own_layers():
    torch.manual_seed(0)
    net = FeedbackNet(FC_NET, (5,), rule="dfa", alignment=True)
    twin = copy.deepcopy(net)
    assert twin.network_feedback.layers["fc2"] is twin.fc2
    x, y = _batch((5,))
    _step(net, x, y)
    _step(twin, x, y)
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)
    assert alignment_stats(twin) == alignment_stats(net)
    assert set(alignment_stats(twin)["fc2"]) == {"grad_angle", "update_angle"}
