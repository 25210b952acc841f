import pytest
import torch

from bpgrid.feedback import RULES, FeedbackLinear, make_rule
from bpgrid.feedback.rules import _signed_magnitude


def test_paper_rules_are_registered():
    assert {"bp", "usf", "nusf", "brsf", "frsf", "rndf", "kp"} <= set(RULES)


def test_unknown_rule_lists_valid_choices():
    with pytest.raises(ValueError, match="unknown feedback rule 'usff'.*usf.*rndf"):
        make_rule("usff")


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_flip_prob_outside_unit_interval(p):
    with pytest.raises(ValueError, match=r"flip_prob must lie in \[0, 1\]"):
        make_rule("brsf", flip_prob=p)


@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_non_positive_sigma(sigma):
    with pytest.raises(ValueError, match="sigma must be positive"):
        make_rule("rndf", sigma=sigma)


def test_unknown_option_names_valid_options():
    with pytest.raises(ValueError, match="takes no option sigma; valid options: flip_prob"):
        make_rule("frsf", sigma=0.1)


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 1.0])
def test_signed_magnitude_flip_fraction_and_uniform_magnitude(p):
    torch.manual_seed(0)
    m = _signed_magnitude(torch.Size([400, 500]), p, torch.empty(0))
    assert abs((m < 0).float().mean().item() - p) < 0.01
    mag = m.abs()
    assert mag.min() >= 0 and mag.max() <= 1
    # U[0,1): mean 1/2, variance 1/12, on both the flipped and the kept entries
    for part in (mag[m < 0], mag[m >= 0]):
        if part.numel() > 1000:
            assert abs(part.mean().item() - 0.5) < 0.01
            assert abs(part.var().item() - 1 / 12) < 0.005


def _weight():
    torch.manual_seed(1)
    return torch.randn(30, 20)


def test_usf_and_nusf_closed_forms():
    w = _weight()
    assert torch.equal(make_rule("usf").feedback(w, {}, 20), torch.sign(w))
    assert torch.allclose(make_rule("nusf").feedback(w, {}, 20), torch.sign(w) / 20)


def test_rndf_state_has_requested_sigma():
    torch.manual_seed(0)
    state = make_rule("rndf", sigma=0.2).init_state(torch.empty(500, 400))
    assert abs(state["matrix"].std().item() - 0.2) < 0.002
    assert abs(state["matrix"].mean().item()) < 0.002


def test_brsf_flip_fraction_on_a_large_layer():
    torch.manual_seed(0)
    layer = FeedbackLinear(500, 400, rule="brsf", flip_prob=0.3)
    layer(torch.randn(2, 500, requires_grad=True)).sum().backward()
    v, w = layer.feedback_weight(), layer.weight.detach()
    assert abs((torch.sign(v) != torch.sign(w)).float().mean().item() - 0.3) < 0.01
