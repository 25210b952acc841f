"""conf/ and the code's registries name the same things (datasets and models: tests/data and
tests/models); each test fails when one side changes without the other."""

from dataclasses import fields

import pytest
import torch
from composing import CONF, compose_config
from omegaconf import OmegaConf

from bpgrid.config import model_keys
from bpgrid.data import DATASETS, load_dataset
from bpgrid.feedback import RULES
from bpgrid.losses import LOSSES
from bpgrid.models import MODELS, NORMS, build_model, model_input_shape
from bpgrid.optim import OPTIMIZERS, optimizer_options

#: method labels that are not the name's parts: the reference report calls kp "R*"
OWN_LABELS = {"kp": "R*"}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def load(group: str, option: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml"))


def test_feedback_configs_are_the_rules_with_their_defaults():
    assert set(options("feedback")) == set(RULES)
    for name, rule in RULES.items():
        cfg = load("feedback", name)
        assert cfg.pop("name") == name and cfg.pop("layers") == "all"
        assert cfg == {f.name: f.default for f in fields(rule)}, name


def test_norm_configs_are_the_nets_norms():
    assert set(options("norm")) == set(NORMS)
    assert all(load("norm", n) == {"name": n} for n in NORMS)


def test_optimizer_configs_name_registered_optimizers_with_all_their_options():
    configs: dict[str, list[dict]] = {}
    for option in options("optimizer"):
        cfg = load("optimizer", option)
        name = cfg.pop("name")
        assert name in OPTIMIZERS, option
        assert set(cfg) == set(optimizer_options(name)), option
        configs.setdefault(name, []).append(cfg)
    assert set(configs) == set(OPTIMIZERS)
    for name, cfgs in configs.items():  # one config per optimizer is its defaults as they are
        defaults = {k: list(v) if isinstance(v, tuple) else v
                    for k, v in optimizer_options(name).items()}
        assert defaults in cfgs, name


def test_every_model_config_has_exactly_the_models_keys():
    for option in options("model"):
        cfg = load("model", option)
        assert cfg["name"] in MODELS and set(cfg) == model_keys(cfg["name"]), option


def test_schedules_and_grids_use_registered_losses():
    for option in options("schedule"):
        cfg = load("schedule", option)
        assert cfg["name"] == option and cfg["loss"] in LOSSES
    swept = [str(load("grid", g)["hydra"]["sweeper"]["params"].get("schedule.loss", ""))
             for g in options("grid")]
    losses = {loss for text in swept for loss in text.split(",") if loss}
    assert losses and losses <= set(LOSSES)


def method_name(feedback: str, norm: str, optimizer: str) -> str:
    """conf/method's naming: the factors that differ from plain SGD, joined by "_"."""
    parts = [feedback != "bp" and feedback, norm != "none" and "bn",
             optimizer != "sgd" and optimizer.removesuffix("1")]
    return "_".join(p for p in parts if p) or "sgd"


def base_of(method: str) -> str | None:
    """The method a variant preset builds on (its defaults name one method), else None."""
    defaults = load("method", method)["defaults"]
    return defaults[0] if len(defaults) == 1 and isinstance(defaults[0], str) else None


@pytest.mark.parametrize("method", [m for m in options("method") if base_of(m) is None])
def test_method_name_and_label_follow_its_factors(method):
    cfg = load("method", method)
    factors = {key.removeprefix("override /"): value
               for entry in cfg["defaults"] for key, value in entry.items()}
    assert set(factors) == {"feedback", "norm", "optimizer"}
    assert all(option in options(group) for group, option in factors.items()), factors
    assert cfg["method"]["name"] == method == method_name(**factors)
    label = cfg["method"]["label"]
    if method in OWN_LABELS:
        assert label == OWN_LABELS[method]
    else:  # the paper's spelling of the name: usf_bn_bm is uSF+BN+BM
        assert label.lower().replace("+", "_") == method


@pytest.mark.parametrize("method", [m for m in options("method") if base_of(m) is not None])
def test_a_variant_method_extends_its_base(method):
    """brsf_bn_bm_flip25 is brSF+BN+BM with one setting changed: its column name and label
    extend the base's, or equal them when its runs report in the base's column (usf_bm_b500)."""
    base = base_of(method)
    assert base in options("method") and base_of(base) is None, base
    cfg, base_cfg = load("method", method), load("method", base)
    name, label = cfg["method"]["name"], cfg["method"]["label"]
    assert name == method or name == base_cfg["method"]["name"]
    assert name == base or name.startswith(f"{base}_")
    base_label = base_cfg["method"]["label"]
    assert label == base_label or label.startswith(base_label + " ")
    assert set(cfg) - {"defaults", "method"}, f"{method} changes nothing of {base}"


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_default_model_fits_the_dataset(dataset):
    cfg = compose_config([f"dataset={dataset}"])
    model = OmegaConf.to_container(cfg.model)
    name = model.pop("name")
    shape = model_input_shape(name)
    if not DATASETS[dataset].embedded:
        # Table 1's nets fix the input: images are resized to it, feature vectors (timit80, with
        # its feature_dim) must match it
        assert shape is not None, f"{dataset}'s default {name} has no fixed input shape"
        vectors = "feature_dim" in cfg.dataset
        assert vectors == (len(shape) == 1), f"{name} takes {shape} inputs"
        assert not vectors or cfg.dataset.feature_dim == shape[0], f"{name} takes {shape} inputs"
        return
    image = shape is not None and len(shape) == 3
    options = OmegaConf.to_container(cfg.dataset)
    data = load_dataset(**options, image_size=shape[1:] if image else None,
                        channels=shape[0] if image else None)
    net = build_model(name, input_shape=data.input_shape, num_classes=data.num_classes, **model)
    with torch.no_grad():
        assert net(data.train.x[:2]).shape == (2, data.num_classes)
