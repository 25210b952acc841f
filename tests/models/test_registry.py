from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bpgrid.config import model_keys
from bpgrid.models import MODELS, build_model, get_model, model_input_shape

CONF = Path(__file__).resolve().parents[2] / "conf" / "model"


def test_registry_names():
    assert list(MODELS) == ["liao_others", "liao_mnist", "liao_cifar", "liao_svhn", "liao_fc",
                            "report_ds", "report_dd", "report_pg", "report_pg_untied",
                            "small_cnn", "mlp"]
    with pytest.raises(ValueError, match="unknown model 'vgg'; valid models: liao_others"):
        get_model("vgg")


def test_model_input_shapes():
    assert {n: model_input_shape(n) for n in MODELS} == {
        "liao_others": (3, 119, 119), "liao_mnist": (1, 28, 28), "liao_cifar": (3, 32, 32),
        "liao_svhn": (3, 32, 32), "liao_fc": (1845,), "report_ds": None, "report_dd": None,
        "report_pg": (3, 32, 32), "report_pg_untied": (3, 32, 32), "small_cnn": None,
        "mlp": None}
    with pytest.raises(ValueError, match="unknown model"):
        model_input_shape("nope")


@pytest.mark.parametrize("name", list(MODELS))
def test_model_config_keys_match_build_model_arguments(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    options = get_model(name).options()
    assert set(cfg) == model_keys(name)
    assert cfg.name == name and cfg.freeze == "none" and cfg.pretrained_first_layer is None
    container = OmegaConf.to_container(cfg)
    for key, default in options.items():
        expected = list(default) if isinstance(default, tuple) else default
        assert container[key] == expected, key


@pytest.mark.parametrize("name", list(MODELS))
def test_model_config_builds(name):
    """The config as Hydra hands it over (a DictConfig with ListConfig values) builds a net."""
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    shape = {"report_pg_untied": (3, 16, 16)}.get(name, model_input_shape(name) or (1, 8, 8))
    net = build_model(**cfg, input_shape=shape, num_classes=4)
    assert net.arch == name and net.output_shape == (4,)


def test_every_model_config_names_a_model():
    """Variants (e.g. mlp_linear) may exist beside the one config per model."""
    assert {OmegaConf.load(p).name for p in CONF.glob("*.yaml")} == set(MODELS)
