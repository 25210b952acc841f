from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from bpgrid.optim import OPTIMIZERS, BatchManhattan, build_optimizer, optimizer_options

CONF = Path(__file__).resolve().parents[1] / "conf" / "optimizer"

W0 = [0.5, -1.0, 0.0]
GRADS = [[-0.3, 0.0, -2.0], [-0.1, 0.4, -0.5], [0.2, -0.3, 1.0]]
LR, M, D = 0.1, 0.9, 0.05


def sign(x):
    return (x > 0) - (x < 0)


def hand(setting):
    """The paper's three settings, written out element by element in plain Python."""
    w, buf, out = list(W0), [0.0] * 3, []
    for g in GRADS:
        for i in range(3):
            acc = -sign(g[i]) + M * buf[i] - D * w[i]
            if setting == 1:
                buf[i] = tau = acc
            elif setting == 2:
                buf[i] = tau = sign(acc)
            else:
                buf[i], tau = acc, sign(acc)
            w[i] += LR * tau
        out.append(list(w))
    return out


@pytest.mark.parametrize("setting", [1, 2, 3])
def test_three_steps_match_hand_computation(setting):
    w = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))
    opt = BatchManhattan([w], lr=LR, setting=setting, momentum=M, weight_decay=D)
    got = []
    for g in GRADS:
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        got.append(w.detach().tolist())
    assert torch.allclose(torch.tensor(got, dtype=torch.float64),
                          torch.tensor(hand(setting), dtype=torch.float64))


def test_settings_differ_on_this_sequence():
    assert hand(1) != hand(2) != hand(3) != hand(1)


def test_setting_1_first_step_by_hand():
    # w=0.5, g=-0.3: tau = 1 + 0 - 0.05*0.5 = 0.975, w = 0.5 + 0.0975
    assert hand(1)[0][0] == pytest.approx(0.5975)


@pytest.mark.parametrize("kwargs,msg", [
    ({"setting": 4}, "setting must be one of"),
    ({"lr": 0.0}, "lr must be positive"),
    ({"momentum": 1.0}, "momentum must lie"),
    ({"weight_decay": -1.0}, "weight_decay must be"),
])
def test_bad_options(kwargs, msg):
    args = {"lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=msg):
        BatchManhattan([torch.nn.Parameter(torch.zeros(1))], **args)


def test_params_without_grad_are_left_alone():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = BatchManhattan([a, b], lr=0.5)
    a.grad = torch.tensor([1.0, -1.0])
    opt.step()
    assert a.tolist() == [0.5, 1.5] and b.tolist() == [1.0, 1.0]


def test_registered_optimizers_and_their_options():
    assert list(OPTIMIZERS) == ["sgd", "bm", "adam"]
    assert optimizer_options("bm") == {"setting": 1, "momentum": 0.9, "weight_decay": 5e-4}
    assert optimizer_options("adam") == {"betas": (0.9, 0.999), "weight_decay": 0.0}
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; valid optimizers: sgd, bm"):
        optimizer_options("rmsprop")


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_optimizer_config_builds_with_its_values(path):
    cfg = OmegaConf.load(path)  # as Hydra hands it over: betas a ListConfig
    w = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer(cfg, [w])
    kind = {"sgd": torch.optim.SGD, "bm": BatchManhattan, "adam": torch.optim.Adam}[cfg.name]
    assert type(opt) is kind
    group = opt.param_groups[0]
    assert group["lr"] == 1.0  # the placeholder the schedule replaces
    for key, value in OmegaConf.to_container(cfg).items():
        if key != "name":
            assert group[key] == (tuple(value) if isinstance(value, list) else value), key


def test_adam_is_capturable_on_request_only():
    w = torch.nn.Parameter(torch.zeros(1))
    assert build_optimizer({"name": "adam"}, [w], capturable=True).defaults["capturable"]
    assert not build_optimizer({"name": "adam"}, [w]).defaults["capturable"]


def test_unknown_option_names_the_valid_ones():
    w = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="'sgd' takes no option nesterov; valid options: momentum, "
                                         "weight_decay"):
        build_optimizer({"name": "sgd", "nesterov": True}, [w])
