from pathlib import Path

import pytest
from composing import CONF, compose_config

from bpgrid.config import ConfigError, cell_id, flat_params, legacy_cell_id, model_keys, validate


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["dataset", "model", "method", "feedback", "norm", "optimizer",
                                   "schedule"])
def test_every_option_of_every_group_composes_and_validates(group):
    for option in options(group):
        validate(compose_config([f"{group}={option}"]))


#: Liao et al. Table 1's net of each dataset; small nets for the embedded sets
TABLE_1 = {"mnist": "liao_mnist", "cifar10": "liao_cifar", "cifar100": "liao_cifar",
           "svhn": "liao_svhn", "timit80": "liao_fc", "digits": "small_cnn", "mnist1d": "mlp",
           "teacher_linear": "mlp", "teacher_nonlinear": "mlp"}


@pytest.mark.parametrize("dataset", options("dataset"))
def test_dataset_picks_its_default_model_and_command_line_model_wins(dataset):
    cfg = compose_config([f"dataset={dataset}"])
    assert cfg.model.name == TABLE_1.get(dataset, "liao_others")  # Table 1's "All others"
    assert compose_config([f"dataset={dataset}", "model=liao_fc"]).model.name == "liao_fc"


def test_teacher_tasks_default_to_lillicraps_nets():
    assert compose_config(["dataset=teacher_linear"]).model.hidden == []
    cfg = compose_config(["dataset=teacher_nonlinear"]).model
    assert (list(cfg.hidden), cfg.activation) == ([20], "tanh")


def test_method_sets_factors_and_a_factor_on_the_command_line_wins():
    cfg = compose_config(["method=usf_bn_bm"])
    assert (cfg.feedback.name, cfg.norm.name, cfg.optimizer.name, cfg.optimizer.setting) == \
        ("usf", "bn", "bm", 1)
    assert cfg.method.label == "uSF+BN+BM"
    cfg = compose_config(["method=usf_bn_bm", "feedback=brsf", "feedback.flip_prob=0.25"])
    assert cfg.feedback.name == "brsf" and cfg.feedback.flip_prob == 0.25
    assert cfg.norm.name == "bn"


def test_paper_bn_columns_use_learnable_affine_and_the_rest_do_not():
    assert compose_config(["method=bn"]).norm.name == "bn_affine"
    assert compose_config(["method=bn_bm"]).norm.name == "bn_affine"
    assert compose_config(["method=usf_bn"]).norm.name == "bn"


def test_cell_id_depends_on_factors_only():
    a = compose_config(["lr_scale=10"])
    assert cell_id(a) == cell_id(compose_config(["lr_scale=10", "tracking.uri=sqlite:///x.db",
                                                 "cells_dir=/elsewhere", "device=cpu"]))
    assert cell_id(a) != cell_id(compose_config(["lr_scale=1"]))
    assert cell_id(a) == cell_id(compose_config(["lr_scale=10.0"]))
    assert cell_id(a) != cell_id(compose_config(["lr_scale=10", "seed=1"]))
    assert len(cell_id(a)) == 12


def test_where_the_data_lives_is_not_a_factor():
    """Moving the data, a trailing slash or allowing downloads computes the same cell."""
    ids = {cell_id(compose_config(["dataset=mnist", *extra])) for extra in (
        ["dataset.root=/data/mnist"], ["dataset.root=/data/mnist/"],
        ["dataset.root=/scratch/mnist"], ["dataset.root=/data/mnist", "dataset.download=true"])}
    assert len(ids) == 1
    legacy = {legacy_cell_id(compose_config(["dataset=mnist", *extra])) for extra in (
        ["dataset.root=/data/mnist"], ["dataset.root=/data/mnist/"],
        ["dataset.root=/data/mnist", "dataset.download=true"])}
    assert len(legacy) == 3  # the ids these cells had before
    assert cell_id(compose_config(["dataset=mnist", "dataset.seed=1"])) not in ids
    assert "dataset.root" not in flat_params(compose_config(["dataset=mnist"]))


def test_known_cell_ids_stay_the_same(monkeypatch):
    """Cell ids name checkpoints and MLflow runs: a config change must not rename old cells.
    The legacy ids are those the code gave before dataset.root/download left the factors (the
    ids pinned then); cells made then are found through them (bpgrid/migrate.py)."""
    monkeypatch.setenv("BPGRID_DATA", "/datasets")
    known = {(): ("acf6bb6bd705", "330b01a21c3e"),
             ("dataset=mnist", "method=usf_bn_bm", "lr_scale=10", "seed=2"):
                 ("da7982e8e361", "da584b34d0e5"),
             ("dataset=teacher_nonlinear", "method=rndf", "schedule=report", "optimizer=adam"):
                 ("6eba539022ec", "f39ec66eccb9")}
    for overrides, (new, old) in known.items():
        cfg = compose_config(list(overrides))
        assert (cell_id(cfg), legacy_cell_id(cfg)) == (new, old), overrides
    monkeypatch.setenv("BPGRID_DATA", "/elsewhere")  # the data moved: the new id stays
    assert cell_id(compose_config(["dataset=mnist", "method=usf_bn_bm", "lr_scale=10",
                                   "seed=2"])) == "da7982e8e361"


def test_params_are_flat_dotted_factors():
    params = flat_params(compose_config(["feedback=frsf", "feedback.flip_prob=0.5"]))
    assert params["feedback.flip_prob"] == "0.5" and params["dataset.name"] == "digits"
    assert params["schedule.lr_values"] == "[0.0005, 5e-05, 5e-06]"
    assert "tracking.uri" not in params


@pytest.mark.parametrize("override,message", [
    (["lr_scale=-1"], "lr_scale: must be a positive number"),
    (["schedule.epochs=0"], "schedule.epochs: must be a positive int"),
    (["schedule.lr_epochs=[1,51]"], "schedule.lr_epochs: needs one entry per"),
    (["schedule.lr_epochs=[2,51,61]"], "must start at epoch 1"),
    (["schedule.loss=l1"], "schedule.loss='l1' is not valid; choose one of: cross_entropy"),
    (["feedback=brsf", "feedback.flip_prob=1.5"], r"flip_prob must lie in \[0, 1\]"),
    (["+model.depth=3"], "model.depth is not an option of model 'small_cnn'; valid options:"),
    (["+dataset.colour=1"], "dataset.colour is not an option of dataset 'digits'"),
    (["optimizer=bm1", "optimizer.setting=7"], "optimizer.setting=7 is not valid"),
    (["optimizer.name=rmsprop"], "optimizer='rmsprop' is not valid; choose one of: sgd, bm, adam"),
    (["+optimizer.nesterov=true"], "optimizer.nesterov is not an option of optimizer 'sgd'; valid "
                                   "options: momentum, name, weight_decay"),
    (["norm.name=ln"], "norm='ln' is not valid; choose one of: none, bn, bn_affine"),
    (["model.activation=gelu"], "model.activation='gelu' is not valid; choose one of: relu, tanh"),
    (["model.dropout=1.0"], r"model.dropout must lie in \[0, 1\), got 1.0"),
    (["model.dropout=half"], "model.dropout: must be a number, got 'half'"),
    (["feedback=kp", "feedback.decay=1.0"], r"feedback: decay must lie in \[0, 1\)"),
    (["method.label="], "method.label: must be a non-empty string, got ''"),
    (["seed=abc"], "seed: must be a non-negative integer, got 'abc'"),
    (["seed=-1"], "seed: must be a non-negative integer, got -1"),
    (["seed=1.5"], "seed: must be a non-negative integer, got 1.5"),
    (["grid.name=../../x"], "grid.name: must be a plain name"),
    (["grid.name=a/b"], "grid.name: must be a plain name"),
    (["tracking.experiment=.."], "tracking.experiment: must be a plain name"),
    (["grid.progress_seconds=0"], "grid.progress_seconds: must be a positive number of seconds"),
])
def test_bad_values_name_the_key_and_the_choices(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(override))


def test_model_keys_are_build_model_arguments_and_the_models_options():
    common = {"name", "activation", "dropout", "freeze", "pretrained_first_layer"}
    assert model_keys("liao_cifar") == common
    assert model_keys("mlp") == common | {"hidden"}


def test_conf_dir_is_the_repository_conf():
    assert (Path(CONF) / "config.yaml").is_file()


@pytest.mark.parametrize("override,message", [
    (["method=wm", "+feedback.mirror_rate=0.1"],
     "feedback: feedback rule 'wm' takes no option mirror_rate; valid options: sigma, "
     "noise_amplitude, mirror_lr, decay, mirror_batch"),
    (["method=wm", "feedback.mirror_batch=0"], "mirror_batch must be a positive int"),
    (["method=dfa_bn_bm", "feedback.magnitude=-1"], "magnitude must be positive or null"),
])
def test_bad_options_of_the_network_and_mirror_rules_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(override))
