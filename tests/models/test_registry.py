from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from bpgrid.feedback import FeedbackLinear
from bpgrid.models import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_OPTIONS,
    MODELS,
    build_model,
    get_model,
    model_input_shape,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "model"
#: build_model arguments every conf/model file carries besides the model's own options
COMMON_KEYS = {"name", "activation", "dropout", "freeze", "pretrained_first_layer"}
#: input shape and outputs of the datasets without a fixed model input shape
DATA_SHAPES = {"digits": ((1, 8, 8), 10), "mnist1d": ((40,), 10),
               "teacher_linear": ((30,), 10), "teacher_nonlinear": ((30,), 10)}


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


def test_default_models():
    assert DEFAULT_MODEL["mnist"] == "liao_mnist" and DEFAULT_MODEL["svhn"] == "liao_svhn"
    assert DEFAULT_MODEL["cifar10"] == DEFAULT_MODEL["cifar100"] == "liao_cifar"
    assert DEFAULT_MODEL["timit80"] == "liao_fc"
    others = ["stl10", "caltech101", "caltech256_101", "icub", "flowers17", "flowers102",
              "pubfig83_id", "sufr_w_id", "lfw_id", "mit_indoor67"]
    assert all(DEFAULT_MODEL[d] == "liao_others" for d in others)
    assert len(DEFAULT_MODEL) == 5 + len(others) + len(DATA_SHAPES)
    assert set(DEFAULT_MODEL.values()) <= set(MODELS)
    assert set(DEFAULT_MODEL_OPTIONS) <= set(DEFAULT_MODEL)


@pytest.mark.parametrize("dataset", DATA_SHAPES)
def test_default_models_of_the_embedded_datasets_build_and_run(dataset):
    shape, outputs = DATA_SHAPES[dataset]
    net = build_model(DEFAULT_MODEL[dataset], input_shape=shape, num_classes=outputs,
                      **DEFAULT_MODEL_OPTIONS.get(dataset, {}))
    assert net(torch.randn(2, *shape)).shape == (2, outputs)
    if dataset == "teacher_linear":
        assert len(net) == 1 and isinstance(net.fc1, FeedbackLinear)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_config_keys_match_build_model_arguments(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    options = get_model(name).options()
    assert set(cfg) == COMMON_KEYS | set(options)
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
