import pytest
import torch

from bpgrid.feedback import RULES, FeedbackLinear, make_rule, sign
from bpgrid.feedback.rules import _signed_magnitude

OPTIONS = {"brsf": [{"flip_prob": 0.0}, {"flip_prob": 0.3}, {"flip_prob": 1.0}],
           "frsf": [{"flip_prob": 0.0}, {"flip_prob": 0.3}, {"flip_prob": 1.0}],
           "kp": [{"decay": 0.1}], "wm": [{"decay": 0.2, "mirror_lr": 0.3}]}
EVERY_RULE = [(name, kw) for name in RULES for kw in OPTIONS.get(name, [{}])]
SIGN_RULES = ("usf", "nusf", "brsf", "frsf")


def test_paper_rules_are_registered():
    assert {"bp", "usf", "nusf", "brsf", "frsf", "rndf", "kp", "wm", "dfa"} <= set(RULES)
    assert [name for name in RULES if RULES[name].network] == ["dfa"]


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


# ---------------------------------------------------------------- sign(0) = +1, for +0.0 and -0.0

def test_sign_is_minus_one_below_zero_and_plus_one_elsewhere():
    x = torch.tensor([-2.0, -1e-300, -0.0, 0.0, 1e-300, 3.0], dtype=torch.float64)
    s = sign(x)
    assert s.dtype == torch.float64
    assert s.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    assert not torch.signbit(s[2:]).any()  # no -0.0 or -1 for either zero


def _with_zeros(negative: bool):
    torch.manual_seed(3)
    w = torch.randn(12, 9, dtype=torch.float64)
    w[::2, ::3] = -0.0 if negative else 0.0
    return w


@pytest.mark.parametrize("name,kw", [(n, k) for n, k in EVERY_RULE if not RULES[n].network])
def test_every_rule_gives_the_same_v_for_plus_and_minus_zero(name, kw):
    rule = make_rule(name, **kw)
    vs = []
    for negative in (False, True):
        w = _with_zeros(negative)
        torch.manual_seed(7)
        state = rule.init_state(w)
        vs.append(rule.feedback(w, state, w.shape[1]).clone())
    assert torch.equal(vs[0], vs[1])
    if name in SIGN_RULES:  # at a zero weight V = ±M, its sign +1 (times S_p's flip, if any)
        zeros = _with_zeros(True) == 0
        v, flip_all = vs[1], kw.get("flip_prob") == 1.0
        assert (v[zeros] != 0).all()
        if kw.get("flip_prob", 0.0) in (0.0, 1.0):
            assert ((v[zeros] < 0) if flip_all else (v[zeros] > 0)).all()


def test_dfa_gradients_do_not_depend_on_the_sign_of_zero_weights():
    from bpgrid.models import FC, FeedbackNet
    grads = []
    for negative in (False, True):
        torch.manual_seed(0)
        net = FeedbackNet((FC(6), FC(3)), (5,), rule="dfa").double()
        with torch.no_grad():
            net.fc2.weight[:, ::2] = -0.0 if negative else 0.0
        x = torch.randn(4, 5, dtype=torch.float64)
        net(x).pow(2).sum().backward()
        grads.append([p.grad for p in net.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)


def test_usf_sign_concordance_counts_zero_weights_as_concordant():
    layer = FeedbackLinear(4, 3, rule="usf", alignment=True)
    with torch.no_grad():
        layer.weight[0] = -0.0
    layer(torch.randn(2, 4, requires_grad=True)).sum().backward()
    assert layer.alignment_stats["sign_concordance"].item() == 1.0


# ---------------------------------------------------------------- weight mirror and dfa options

@pytest.mark.parametrize("kw,message", [
    ({"noise_amplitude": 0.0}, "noise_amplitude must be positive"),
    ({"mirror_lr": -1.0}, "mirror_lr must be >= 0"),
    ({"decay": 1.0}, r"decay must lie in \[0, 1\)"),
    ({"mirror_batch": 0}, "mirror_batch must be a positive int"),
    ({"mirror_batch": 2.5}, "mirror_batch must be a positive int"),
    ({"sigma": 0.0}, "sigma must be positive"),
])
def test_weight_mirror_options_are_checked(kw, message):
    with pytest.raises(ValueError, match=message):
        make_rule("wm", **kw)


def test_dfa_options_are_checked():
    with pytest.raises(ValueError, match="magnitude must be positive or null"):
        make_rule("dfa", magnitude=0.0)
    with pytest.raises(ValueError, match="takes no option sigma; valid options: magnitude"):
        make_rule("dfa", sigma=0.1)


@pytest.mark.parametrize("shape,fan_in", [((7, 5), 5), ((6, 2, 3, 3), 18), ((4, 6, 10), 10)])
def test_weight_mirror_step_closed_form(shape, fan_in):
    """One mirror phase: V <- V - λV + (η/n) Yᵀ X, X ~ N(0, σ²) of (n, fan_in), Y = X Wᵀ, for a
    linear, a conv (rows are units, columns the patch) and an untied conv weight."""
    rule = make_rule("wm", sigma=0.1, noise_amplitude=0.7, mirror_lr=0.05, decay=0.2,
                     mirror_batch=9)
    torch.manual_seed(0)
    w = torch.randn(shape, dtype=torch.float64)
    state = rule.init_state(w)
    v0 = state["matrix"].clone()
    torch.manual_seed(11)
    v1 = rule.feedback(w, state, fan_in)
    torch.manual_seed(11)
    x = 0.7 * torch.randn(9, fan_in, dtype=torch.float64)
    wm = w.reshape(-1, fan_in)
    expected = v0 - 0.2 * v0 + (0.05 / 9) * (x @ wm.T).T.mm(x).reshape(shape)
    assert torch.allclose(v1, expected, rtol=1e-12, atol=1e-14)
    assert v1 is state["matrix"]  # the state moves; V is that state


def test_weight_mirror_converges_to_its_fixed_point_times_w():
    """E[Yᵀ X]/n = σ²W, so with W fixed V tends to (η σ²/λ) W: here 2 W."""
    rule = make_rule("wm", noise_amplitude=2.0, mirror_lr=0.05, decay=0.1, mirror_batch=500)
    torch.manual_seed(0)
    w = torch.randn(20, 10, dtype=torch.float64)
    state = rule.init_state(w)
    for _ in range(300):
        v = rule.feedback(w, state, 10)
    cos = (v * w).sum() / (v.norm() * w.norm())
    assert torch.rad2deg(torch.acos(cos)).item() < 5
    assert (v.norm() / w.norm()).item() == pytest.approx(2.0, rel=0.05)


# ---------------------------------------------------------------- an array's stacked weights

@pytest.mark.parametrize("name,kw", [(n, k) for n, k in EVERY_RULE if not RULES[n].network])
def test_on_stacked_weights_each_member_gets_its_own_v_from_its_own_generator(name, kw):
    """With one generator per member, V of the stacked (K, ...) weights is each member's V, as
    the rule gives it for that member's weight alone, drawing from that member's generator."""
    rule = make_rule(name, **kw)
    torch.manual_seed(0)
    weights = torch.randn(3, 6, 2, 3, 3, dtype=torch.float64)  # 3 members' conv weights
    states = [rule.init_state(w) for w in weights]
    stacked = {key: torch.stack([s[key] for s in states]) for key in states[0]}
    generators = [torch.Generator().manual_seed(10 + k) for k in range(3)]
    draws = [g.get_state() for g in generators]
    v = rule.feedback(weights, stacked, 18, generators)
    for k in range(3):
        torch.set_rng_state(draws[k])
        alone = rule.feedback(weights[k], states[k], 18)
        assert torch.allclose(v[k], alone, rtol=1e-12, atol=1e-15), k
        for key in states[k]:  # state a rule moves (kp's offset, wm's matrix) moved alike
            assert torch.allclose(stacked[key][k], states[k][key], rtol=1e-12, atol=1e-15)
    if name == "brsf":  # M is drawn for each member from its own generator
        assert not torch.equal(v[0].abs(), v[1].abs())
