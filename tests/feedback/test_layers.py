import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bpgrid.feedback import (
    FeedbackConv1d,
    FeedbackConv2d,
    FeedbackConv3d,
    FeedbackLinear,
    UntiedConv2d,
)

ASYMMETRIC = [("usf", {}), ("nusf", {}), ("brsf", {"flip_prob": 0.25}),
              ("frsf", {"flip_prob": 0.25}), ("rndf", {"sigma": 0.1}), ("kp", {"decay": 0.0}),
              ("wm", {"mirror_lr": 0.1, "decay": 0.1})]


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def _grads(layer, x, g):
    x = x.clone().requires_grad_(True)
    y = layer(x)
    y.backward(g)
    return y.detach(), x.grad, layer.weight.grad, layer.bias.grad


# ---------------------------------------------------------------- bp equals native autograd

def test_bp_linear_equals_native():
    torch.manual_seed(0)
    native = nn.Linear(7, 5)
    ours = FeedbackLinear(7, 5, rule="bp")
    ours.load_state_dict(native.state_dict())
    x, g = torch.randn(4, 3, 7), torch.randn(4, 3, 5)
    for a, b in zip(_grads(native, x, g), _grads(ours, x, g), strict=True):
        assert torch.allclose(a, b)


@pytest.mark.parametrize("alignment", [False, True])
def test_bp_conv_equals_native(alignment):
    torch.manual_seed(0)
    native = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    ours = FeedbackConv2d(3, 4, 3, stride=2, padding=1, rule="bp", alignment=alignment)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(2, 3, 9, 9)
    g = torch.randn_like(native(x))
    for a, b in zip(_grads(native, x, g), _grads(ours, x, g), strict=True):
        assert torch.allclose(a, b)
    if alignment:
        assert ours.alignment_stats["grad_angle"].item() == pytest.approx(0, abs=1e-5)


# ---------------------------------------------------------------- every rule: closed forms

@pytest.mark.parametrize("rule,kw", ASYMMETRIC)
def test_linear_input_grad_is_g_times_v_and_weight_grad_is_bp(rule, kw):
    torch.manual_seed(0)
    layer = FeedbackLinear(6, 4, rule=rule, **kw)
    x, g = torch.randn(5, 6), torch.randn(5, 4)
    y, gx, gw, gb = _grads(layer, x, g)
    v = layer.feedback_weight()
    assert not torch.allclose(v, layer.weight)
    assert torch.allclose(y, x @ layer.weight.T + layer.bias)
    assert torch.allclose(gx, g @ v)
    assert torch.allclose(gw, g.T @ x)
    assert torch.allclose(gb, g.sum(0))


@pytest.mark.parametrize("rule,kw", ASYMMETRIC)
def test_conv_input_grad_is_transposed_conv_with_v(rule, kw):
    torch.manual_seed(0)
    layer = FeedbackConv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 2), rule=rule, **kw)
    native = nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 2))
    native.load_state_dict({k: v for k, v in layer.state_dict().items()
                            if not k.startswith("feedback_")})
    x = torch.randn(2, 3, 8, 7)
    g = torch.randn_like(native(x))
    y, gx, gw, gb = _grads(layer, x, g)
    ny, ngx, ngw, ngb = _grads(native, x, g)
    v = layer.feedback_weight()
    expected_gx = F.conv_transpose2d(g, v, stride=(2, 1), padding=(1, 2),
                                     output_padding=((x.shape[2] + 2 - 3) % 2, 0))
    assert torch.allclose(y, ny)
    assert torch.allclose(gx, expected_gx)
    assert torch.allclose(gw, ngw) and torch.allclose(gb, ngb)


CONVS = [  # (feedback class, native class, input shape, options)
    (FeedbackConv1d, nn.Conv1d, (2, 4, 11), {"kernel_size": 3, "stride": 2, "padding": 1}),
    (FeedbackConv1d, nn.Conv1d, (2, 4, 11), {"kernel_size": 4, "groups": 2, "dilation": 2}),
    (FeedbackConv2d, nn.Conv2d, (2, 4, 7, 6), {"kernel_size": 3, "groups": 4, "padding": 1}),
    (FeedbackConv2d, nn.Conv2d, (2, 4, 7, 6), {"kernel_size": (3, 2), "groups": 2,
                                               "stride": (2, 1)}),
    (FeedbackConv2d, nn.Conv2d, (2, 4, 7, 6), {"kernel_size": 4, "padding": "same"}),
    (FeedbackConv2d, nn.Conv2d, (2, 4, 7, 6), {"kernel_size": 3, "padding": 2,
                                               "padding_mode": "reflect"}),
    (FeedbackConv2d, nn.Conv2d, (2, 4, 7, 6), {"kernel_size": 3, "padding": 1,
                                               "padding_mode": "circular", "bias": False}),
    (FeedbackConv3d, nn.Conv3d, (2, 4, 5, 4, 6), {"kernel_size": 2, "groups": 2,
                                                  "padding": (1, 0, 1)}),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # PyTorch's own
@pytest.mark.parametrize("rule", ["usf", "rndf"])
@pytest.mark.parametrize("cls,native_cls,shape,options", CONVS)
def test_every_conv_input_grad_is_the_conv_with_v_and_weight_grad_is_bp(cls, native_cls, shape,
                                                                        options, rule):
    """Output and W, b gradients as PyTorch's; input gradient as autograd through the same
    convolution (padding mode included) with V in place of W."""
    torch.manual_seed(0)
    layer = cls(4, 8, rule=rule, **options)
    native = native_cls(4, 8, **options)
    native.load_state_dict({k: v for k, v in layer.state_dict().items()
                            if not k.startswith("feedback_")})
    x = torch.randn(shape)
    g = torch.randn_like(native(x))
    y, gx, gw, gb = _grads_nobias(layer, x, g)
    ny, bp_gx, ngw, ngb = _grads_nobias(native, x, g)
    twin = native_cls(4, 8, **options)
    twin.load_state_dict(native.state_dict())
    with torch.no_grad():
        twin.weight.copy_(layer.feedback_weight())
    _, twin_gx, _, _ = _grads_nobias(twin, x, g)
    assert torch.allclose(y, ny)
    assert torch.allclose(gx, twin_gx) and not torch.allclose(gx, bp_gx)
    assert torch.allclose(gw, ngw)
    assert (gb is None) == (ngb is None) and (gb is None or torch.allclose(gb, ngb))


def _grads_nobias(layer, x, g):
    x = x.clone().requires_grad_(True)
    y = layer(x)
    y.backward(g)
    bias = None if layer.bias is None else layer.bias.grad
    return y.detach(), x.grad, layer.weight.grad, bias


def test_nusf_conv_divides_by_kernel_area_times_in_channels():
    layer = FeedbackConv2d(3, 4, (5, 2), rule="nusf")
    layer(torch.randn(1, 3, 6, 6, requires_grad=True)).sum().backward()
    assert torch.allclose(layer.feedback_weight(), torch.sign(layer.weight) / (5 * 2 * 3))


# ---------------------------------------------------------------- random state

def test_brsf_draws_new_v_every_backward_with_sign_per_flips():
    torch.manual_seed(0)
    layer = FeedbackLinear(50, 40, rule="brsf", flip_prob=0.5)
    vs = []
    for _ in range(2):
        layer(torch.randn(3, 50, requires_grad=True)).sum().backward()
        vs.append(layer.feedback_weight().clone())
    assert not torch.equal(vs[0], vs[1])
    s = torch.sign(layer.weight.detach())
    for v in vs:
        assert torch.equal(torch.sign(v).abs(), s.abs())  # V = ±|M|·sign(W), entrywise
    flips = [torch.sign(v) != s for v in vs]
    assert not torch.equal(flips[0], flips[1])  # S_p redrawn with M


@pytest.mark.parametrize("rule,kw", [("frsf", {"flip_prob": 0.5}), ("rndf", {})])
def test_fixed_rules_keep_v_across_steps_and_save_load(rule, kw):
    torch.manual_seed(0)
    layer = FeedbackLinear(20, 10, rule=rule, **kw)
    opt = torch.optim.SGD(layer.parameters(), lr=1e-3)
    vs = []
    for _ in range(3):
        opt.zero_grad()
        layer(torch.randn(4, 20, requires_grad=True)).sum().backward()
        vs.append(layer.feedback_weight().clone())
        opt.step()
    # magnitudes fixed (frsf follows the sign of the current W, whose small entries may flip)
    assert torch.equal(vs[0].abs(), vs[1].abs()) and torch.equal(vs[1].abs(), vs[2].abs())

    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    torch.manual_seed(123)
    fresh = FeedbackLinear(20, 10, rule=rule, **kw)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    fresh(torch.randn(4, 20, requires_grad=True)).sum().backward()
    layer(torch.randn(4, 20, requires_grad=True)).sum().backward()
    assert torch.equal(fresh.feedback_weight(), layer.feedback_weight())


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_frsf_follows_sign_of_current_w_with_fixed_magnitude_and_flips(p):
    torch.manual_seed(0)
    layer = FeedbackLinear(40, 30, rule="frsf", flip_prob=p)
    with torch.no_grad():
        layer.weight.neg_()
    layer(torch.randn(2, 40, requires_grad=True)).sum().backward()
    v, s = layer.feedback_weight(), torch.sign(layer.weight.detach())
    assert torch.equal(v.abs(), layer.feedback_magnitude)
    flipped = (torch.sign(v) != s).double().mean().item()
    assert flipped == pytest.approx(p, abs=0.1)
    if 0 < p < 1:
        assert torch.equal(v, s * layer.feedback_magnitude * layer.feedback_flip)


def test_random_state_is_a_buffer_that_moves_with_the_module():
    layer = FeedbackConv2d(2, 3, 3, rule="rndf").to(torch.float32)
    assert "feedback_matrix" in dict(layer.named_buffers())
    assert layer.feedback_matrix.dtype == torch.float32
    assert "rule=RndF(sigma=0.05)" in repr(layer)


@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_kp_v_moves_by_exactly_the_w_update(decay):
    torch.manual_seed(0)
    layer = FeedbackLinear(10, 7, rule="kp", decay=decay)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    v_prev = w_prev = None
    for _ in range(4):
        opt.zero_grad()
        layer(torch.randn(5, 10, requires_grad=True)).pow(2).sum().backward()
        v, w = layer.feedback_weight().clone(), layer.weight.detach().clone()
        if v_prev is not None:
            assert torch.allclose(v - v_prev, (w - w_prev) - decay * v_prev)
        v_prev, w_prev = v, w
        opt.step()


# ---------------------------------------------------------------- untied convolution

def test_untied_with_tied_kernels_equals_conv2d():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    untied = UntiedConv2d(3, 4, (9, 7), 3, stride=2, padding=1)
    positions = untied.weight.shape[0]
    with torch.no_grad():
        untied.weight.copy_(conv.weight.reshape(4, -1).expand(positions, 4, 27))
        untied.bias.copy_(conv.bias.expand(positions, 4))
    x = torch.randn(2, 3, 9, 7)
    y = conv(x)
    g = torch.randn_like(y)
    cy, cgx, cgw, cgb = _grads(conv, x, g)
    uy, ugx, ugw, ugb = _grads(untied, x, g)
    assert torch.allclose(uy, cy)
    assert torch.allclose(ugx, cgx)
    # the shared kernel's gradient is the sum of the per-position gradients
    assert torch.allclose(ugw.sum(0).reshape(conv.weight.shape), cgw)
    assert torch.allclose(ugb.sum(0), cgb)


def test_untied_weight_layout_and_v_gradient():
    torch.manual_seed(0)
    layer = UntiedConv2d(2, 3, 6, 3, rule="rndf")
    assert layer.weight.shape == (16, 3, 18) and layer.bias.shape == (16, 3)
    x, g = torch.randn(2, 2, 6, 6), torch.randn(2, 3, 4, 4)
    _, gx, _, _ = _grads(layer, x, g)
    # same layer with V as its weight, ordinary autograd: its input gradient must equal ours
    twin = UntiedConv2d(2, 3, 6, 3)
    with torch.no_grad():
        twin.weight.copy_(layer.feedback_weight())
    _, twin_gx, _, _ = _grads(twin, x, g)
    assert torch.allclose(gx, twin_gx)


def test_untied_rejects_wrong_input_size():
    layer = UntiedConv2d(1, 2, 8, 3)
    with pytest.raises(ValueError, match=r"built for input \(8, 8\)"):
        layer(torch.randn(1, 1, 9, 9))


# ---------------------------------------------------------------- alignment metrics

def test_alignment_metrics_match_definitions():
    torch.manual_seed(0)
    layer = FeedbackLinear(30, 20, rule="rndf", alignment=True)
    x, g = torch.randn(8, 30), torch.randn(8, 20)
    _, gx, _, _ = _grads(layer, x, g)
    v, w = layer.feedback_weight(), layer.weight.detach()
    stats = layer.alignment_stats

    def deg(a, b):
        cos = (a * b).sum() / (a.norm() * b.norm())
        return torch.rad2deg(torch.acos(cos)).item()

    assert stats["grad_angle"].item() == pytest.approx(deg(gx, g @ w), abs=1e-6)
    assert stats["weight_angle"].item() == pytest.approx(deg(v, w), abs=1e-6)
    assert stats["sign_concordance"].item() == pytest.approx(
        (torch.sign(v) == torch.sign(w)).double().mean().item())


def test_usf_has_full_sign_concordance_and_no_stats_when_off():
    layer = FeedbackConv2d(2, 3, 3, rule="usf", alignment=True)
    layer(torch.randn(1, 2, 5, 5, requires_grad=True)).sum().backward()
    assert layer.alignment_stats["sign_concordance"].item() == 1.0
    assert 0 < layer.alignment_stats["grad_angle"].item() < 90
    quiet = FeedbackConv2d(2, 3, 3, rule="usf")
    quiet(torch.randn(1, 2, 5, 5, requires_grad=True)).sum().backward()
    assert quiet.alignment_stats == {}


def test_eval_forward_does_not_draw_feedback():
    layer = FeedbackLinear(4, 3, rule="brsf")
    with torch.no_grad():
        layer(torch.randn(2, 4))
    with pytest.raises(RuntimeError, match="no training pass"):
        layer.feedback_weight()
