import pytest
import torch
import torch.nn.functional as F
from torch.optim import SGD

from bpgrid.feedback import alignment_stats, make_rule
from bpgrid.models import MODELS, build_model

# input shape and options per architecture; the untied net runs at 16x16 to stay fast on CPU
ARCHS = {
    "liao_others": (3, 119, 119), "liao_mnist": (1, 28, 28), "liao_cifar": (3, 32, 32),
    "liao_svhn": (3, 32, 32), "liao_fc": (1845,), "report_ds": (3, 32, 32),
    "report_dd": (3, 32, 32), "report_pg": (3, 32, 32), "report_pg_untied": (3, 16, 16),
    "small_cnn": (1, 8, 8), "mlp": (40,),
}
RULES = {"bp": {}, "usf": {}, "nusf": {}, "brsf": {"flip_prob": 0.25},
         "frsf": {"flip_prob": 0.25}, "rndf": {"sigma": 0.1}, "kp": {"decay": 0.01}}


def test_every_model_is_exercised():
    assert set(ARCHS) == set(MODELS)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", ARCHS)
def test_forward_and_backward_under_every_rule(name, rule):
    shape = ARCHS[name]
    net = build_model(name, input_shape=shape, num_classes=5, feedback=rule,
                      feedback_options=RULES[rule], norm="bn")
    assert all(net.weight_layer(n).rule.name == rule for n in net.weight_layers)
    x = torch.randn(2, *shape, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 5)
    F.cross_entropy(out, torch.tensor([0, 3])).backward()
    assert torch.isfinite(x.grad).all()
    for param_name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name


def test_feedback_layers_two_makes_exactly_the_last_two_asymmetric():
    net = build_model("liao_others", input_shape=(3, 119, 119), num_classes=17,
                      feedback="rndf", feedback_layers=2, feedback_options={"sigma": 0.2},
                      alignment=True)
    assert net.weight_layers == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    rules = {n: net.weight_layer(n).rule for n in net.weight_layers}
    assert {n: r.name for n, r in rules.items()} == {
        "conv1": "bp", "conv2": "bp", "fc1": "bp", "fc2": "rndf", "fc3": "rndf"}
    assert rules["fc3"] == make_rule("rndf", sigma=0.2)
    net(torch.randn(2, 3, 119, 119)).sum().backward()
    assert set(alignment_stats(net)) == {"fc2", "fc3"}
    assert not torch.equal(net.fc3.feedback_weight(), net.fc3.weight)
    assert torch.equal(net.fc1.feedback_weight(), net.fc1.weight)


def test_feedback_layers_by_name():
    net = build_model("liao_mnist", input_shape=(1, 28, 28), num_classes=10, feedback="usf",
                      feedback_layers=["conv2"])
    assert [net.weight_layer(n).rule.name for n in net.weight_layers] == [
        "bp", "usf", "bp", "bp"]


@pytest.mark.parametrize("freeze, frozen", [
    ("none", set()),
    ("bottom", {"fc2.weight", "fc2.bias"}),
    ("top", {"conv1.weight", "conv1.bias", "conv1_norm.weight", "conv1_norm.bias",
             "conv2.weight", "conv2.bias", "conv2_norm.weight", "conv2_norm.bias",
             "fc1.weight", "fc1.bias", "fc1_norm.weight", "fc1_norm.bias"}),
])
def test_freeze_keeps_exactly_the_clamped_parameters(freeze, frozen):
    """Experiment C2: Bottom clamps the last layer, Top clamps every layer before it."""
    net = build_model("liao_mnist", input_shape=(1, 28, 28), num_classes=10, norm="bn_affine",
                      feedback="rndf", freeze=freeze)
    params = dict(net.named_parameters())
    assert {n for n, p in params.items() if not p.requires_grad} == frozen
    before = {n: p.detach().clone() for n, p in params.items()}
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(net(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3])).backward()
        opt.step()
    unchanged = {n for n, p in params.items() if torch.equal(p, before[n])}
    assert unchanged == frozen


def test_pretrained_first_layer_from_a_state_dict_is_loaded_and_frozen(tmp_path):
    """The report's Tables 11-14: conv1 from a trained Poggio's net, untied conv2/conv3."""
    source = build_model("report_pg", input_shape=(3, 32, 32), num_classes=100)
    path = tmp_path / "pg.pt"
    torch.save(source.state_dict(), path)
    net = build_model("report_pg_untied", input_shape=(3, 32, 32), num_classes=100,
                      untied_layers=["conv2", "conv3"], activation="tanh", feedback="kp",
                      feedback_layers=3, pretrained_first_layer=str(path))
    assert torch.equal(net.conv1.weight, source.conv1.weight)
    assert torch.equal(net.conv1.bias, source.conv1.bias)
    assert [n for n, p in net.named_parameters() if not p.requires_grad] == [
        "conv1.weight", "conv1.bias"]
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    assert net.conv1.weight.grad is None and net.conv2.weight.grad is not None


def test_pretrained_first_layer_from_a_weight_bias_dict(tmp_path):
    weight, bias = torch.randn(20, 1, 5, 5), torch.randn(20)
    torch.save({"weight": weight, "bias": bias}, tmp_path / "conv1.pt")
    net = build_model("liao_mnist", input_shape=(1, 28, 28), num_classes=10,
                      pretrained_first_layer=tmp_path / "conv1.pt")
    assert torch.equal(net.conv1.weight, weight) and torch.equal(net.conv1.bias, bias)
    assert not net.conv1.weight.requires_grad and not net.conv1.bias.requires_grad


def test_pretrained_first_layer_errors(tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        build_model("liao_mnist", input_shape=(1, 28, 28), num_classes=10,
                    pretrained_first_layer=missing)
    gray = build_model("liao_cifar", input_shape=(1, 32, 32), num_classes=10)
    torch.save(gray.state_dict(), tmp_path / "gray.pt")
    with pytest.raises(ValueError, match=r"conv1.weight has shape \(32, 1, 5, 5\).*"
                                         r"\(3, 32, 32\) has \(32, 3, 5, 5\)"):
        build_model("liao_cifar", input_shape=(3, 32, 32), num_classes=10,
                    pretrained_first_layer=tmp_path / "gray.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="holds neither"):
        build_model("liao_mnist", input_shape=(1, 28, 28), num_classes=10,
                    pretrained_first_layer=tmp_path / "odd.pt")


@pytest.mark.parametrize("kw, error, match", [
    ({"name": "resnet"}, ValueError, "unknown model 'resnet'; valid models: liao_others, "),
    ({"freeze": "middle"}, ValueError, "unknown freeze 'middle'; valid choices: none, bottom"),
    ({"norm": "layer"}, ValueError, "unknown norm 'layer'"),
    ({"activation": "elu"}, ValueError, "unknown activation 'elu'; valid choices: relu, tanh"),
    ({"depth": 3}, ValueError, "model 'liao_mnist' takes no option depth; valid options: none"),
    ({"feedback": "fa"}, ValueError, "unknown feedback rule 'fa'"),
    ({"feedback": "rndf", "feedback_options": {"flip_prob": 0.1}}, ValueError, "flip_prob"),
    ({"num_classes": 0}, ValueError, "num_classes must be a positive int"),
    ({"feedback_layers": 5}, ValueError, "has 4 weight layers"),
])
def test_errors_name_the_valid_choices(kw, error, match):
    args = {"name": "liao_mnist", "input_shape": (1, 28, 28), "num_classes": 10, **kw}
    with pytest.raises(error, match=match):
        build_model(args.pop("name"), **args)


def test_input_size_that_does_not_fit_names_the_sizes():
    with pytest.raises(ValueError, match=r"liao_mnist: input shape \(1, 8, 8\) does not fit.*"
                                         r"conv2 \(5x5/1, padding 0\) gets 2x2"):
        build_model("liao_mnist", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match=r"conv1 needs \(channels, height, width\)"):
        build_model("liao_cifar", input_shape=(1845,), num_classes=10)


def test_model_option_error_lists_the_models_options():
    with pytest.raises(ValueError, match="valid options: untied_layers, conv_dropout, pooling"):
        build_model("report_pg_untied", input_shape=(3, 32, 32), num_classes=10, untied=True)
