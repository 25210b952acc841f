"""bpgrid/arrays/net.py: each member of an ArrayNet computes exactly what its plain FeedbackNet
computes (HFTA's check: a plain model copied into a slot gives the same outputs and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bpgrid.arrays.net import ArrayNet
from bpgrid.losses import member_losses
from bpgrid.models import FC, Conv, FeedbackNet, Pool, build_model, model_input_shape

RULES = [("bp", {}), ("usf", {}), ("nusf", {}), ("brsf", {"flip_prob": 0.25}),
         ("frsf", {"flip_prob": 0.5}), ("rndf", {}), ("kp", {"decay": 0.1}),
         ("wm", {"mirror_batch": 5}), ("dfa", {})]
LARGE = ["liao_others", "liao_svhn", "report_pg_untied"]
MODELS = ["liao_cifar", "liao_fc", "liao_mnist", "mlp", "report_dd", "report_ds", "report_pg",
          "small_cnn", *(pytest.param(name, marks=pytest.mark.slow) for name in LARGE)]


def plain(model: str, rule: str, options: dict, seed: int, **kw) -> FeedbackNet:
    torch.manual_seed(seed)
    shape = model_input_shape(model) or {"small_cnn": (1, 8, 8)}.get(model, (12,))
    return build_model(model, input_shape=shape, num_classes=4, feedback=rule,
                       feedback_options=options, **kw).double()


def assert_close(mine, theirs, relative: float, what: str, scale: float | None = None) -> None:
    """|mine - theirs| at most ``relative`` times ``scale``, by default the largest entry of
    ``theirs``."""
    worst = (mine - theirs).abs().max().item()
    scale = theirs.abs().max().item() if scale is None else scale
    assert worst <= relative * scale, (what, worst, scale)


def generators(count: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(100 + k) for k in range(count)]


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


@pytest.mark.parametrize("norm", ["none", "bn_affine"])
@pytest.mark.parametrize("model", MODELS)
def test_every_member_computes_its_plain_nets_outputs_and_gradients(model, norm):
    """Members with every rule (dropout too), one training step's forward and backward: each
    member's output, parameter gradients, V and updated feedback state are its plain net's, its
    random draws taken from its generator where the plain net takes torch's."""
    rules = [RULES[i] for i in (1, 3, 7, 8)] if model in LARGE else RULES
    nets = [plain(model, rule, options, seed, norm=norm, dropout=0.25)
            for seed, (rule, options) in enumerate(rules)]
    gens = generators(len(nets))
    states = [g.get_state() for g in gens]
    array = ArrayNet(nets, gens)
    torch.manual_seed(7)
    x = torch.randn(len(nets), 3, *nets[0].input_shape)
    y = torch.randint(0, 4, (len(nets), 3))
    out = array(x)
    member_losses(F.cross_entropy, out, y).sum().backward()
    fused = dict(array.named_parameters())
    for k, net in enumerate(nets):
        torch.set_rng_state(states[k])  # the plain net draws what member k drew
        mine = net(x[k])
        F.cross_entropy(mine, y[k]).backward()
        assert_close(out[k], mine, 1e-12, f"{k} output")
        # on the gradient's scale: a bias just before BN has a gradient of rounding noise
        scale = max(p.grad.abs().max().item() for p in net.parameters())
        for name, p in net.named_parameters():
            assert_close(fused[name].grad[k], p.grad, 1e-9, f"{k} {name}", scale)
        exported = array.export(k, plain(model, *rules[k], seed=99, norm=norm, dropout=0.25))
        for key, value in net.state_dict().items():  # kp's and wm's state moved alike
            assert_close(exported.state_dict()[key].double(), value.double(), 1e-12, f"{k} {key}")


def test_members_with_one_rule_side_by_side_form_one_run():
    rules = ["usf", "usf", "kp", "usf", "bp"]
    array = ArrayNet([plain("mlp", r, {}, k) for k, r in enumerate(rules)], generators(5))
    runs = [(run.rule.name, run.members.start, run.members.stop) for run in array.fc1.runs]
    assert runs == [("usf", 0, 2), ("kp", 2, 3), ("usf", 3, 4), ("bp", 4, 5)]


def test_only_the_members_of_a_run_of_one_rule_draw_and_a_members_draws_are_its_own():
    """brsf's V of member 0 is the same whichever members sit beside it."""
    def v_of_member_0(others):
        nets = [plain("mlp", "brsf", {"flip_prob": 0.3}, 0)] + [
            plain("mlp", rule, {}, k + 1) for k, rule in enumerate(others)]
        array = ArrayNet(nets, generators(len(nets)))
        x = torch.randn(len(nets), 2, 12)
        array(x).sum().backward()
        return array.fc1.feedback_weight()[0]

    alone = v_of_member_0([])
    assert torch.equal(v_of_member_0(["usf", "brsf"]), alone)
    assert torch.equal(v_of_member_0(["kp"]), alone)


def test_export_and_load_move_a_member_between_arrays():
    nets = [plain("small_cnn", "frsf", {"flip_prob": 0.5}, k, norm="bn") for k in range(3)]
    array = ArrayNet(nets, generators(3))
    other = ArrayNet([plain("small_cnn", "frsf", {"flip_prob": 0.5}, 9, norm="bn")],
                     generators(1))
    other.load(0, array.export(2, plain("small_cnn", "frsf", {"flip_prob": 0.5}, 5, norm="bn")))
    for key, value in other.state_dict().items():
        assert torch.equal(value[0], array.state_dict()[key][2]), key


def test_members_of_other_architectures_are_refused_naming_the_difference():
    with pytest.raises(ValueError, match="member 1 has another architecture.*fc1.weight"):
        ArrayNet([plain("mlp", "bp", {}, 0), plain("mlp", "bp", {}, 1, hidden=[50, 100])],
                 generators(2))
    with pytest.raises(ValueError, match="member 1 has another architecture.*fc1_norm"):
        ArrayNet([plain("mlp", "bp", {}, 0), plain("mlp", "bp", {}, 1, norm="bn")],
                 generators(2))


def test_a_net_with_a_module_arrays_cannot_fuse_is_refused():
    net = FeedbackNet((Conv(2, 3), Pool("max", 2, 2), FC(3)), (1, 8, 8))
    net.add_module("extra", nn.Softmax(-1))
    with pytest.raises(ValueError, match="no fused version of Softmax"):
        ArrayNet([net], generators(1))


def test_image_members_are_grouped_and_vectors_stacked():
    """Member k's image channels are the grouped input's channels k·C ... (k+1)·C - 1."""
    nets = [plain("small_cnn", "bp", {}, k) for k in range(3)]
    array = ArrayNet(nets, generators(3))
    seen = {}
    array.conv1.register_forward_pre_hook(lambda m, args: seen.setdefault("conv1", args[0]))
    array.fc1.register_forward_pre_hook(lambda m, args: seen.setdefault("fc1", args[0]))
    x = torch.randn(3, 5, 1, 8, 8)
    array(x)
    assert torch.equal(seen["conv1"], x.transpose(0, 1).reshape(5, 3, 8, 8))
    assert seen["fc1"].shape == (3, 5, 32 * 2 * 2)
