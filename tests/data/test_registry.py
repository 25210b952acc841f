from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bpgrid.data import DATASETS, dataset_options, default_root, load_dataset
from bpgrid.data.registry import COMMON, EMBEDDED

CONFIGS = Path(__file__).parents[2] / "conf" / "dataset"


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'; valid names: .*cifar10, "):
        load_dataset("cifar")


def test_unknown_option_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"\['n_trian'\] for dataset 'lfw_id'.*'n_train'"):
        load_dataset("lfw_id", n_trian=3)


@pytest.mark.parametrize("bad", [{"channels": 2}, {"image_size": (8,)}, {"image_size": (0, 4)}])
def test_bad_preparation_arguments(bad):
    with pytest.raises(ValueError, match="channels|image_size"):
        load_dataset("digits", **bad)


def test_default_root_follows_bpgrid_data(monkeypatch, tmp_path):
    monkeypatch.setenv("BPGRID_DATA", str(tmp_path))
    assert default_root("svhn") == tmp_path / "svhn"
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "svhn" / "train_32x32.mat")):
        load_dataset("svhn")


def test_every_dataset_has_a_config_and_every_config_a_dataset():
    assert {path.stem for path in CONFIGS.glob("*.yaml")} == set(DATASETS)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_config_keys_are_load_dataset_arguments(name, monkeypatch):
    monkeypatch.setenv("BPGRID_DATA", "/datasets")
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{name}.yaml"), resolve=True)
    config.pop("defaults")  # the dataset's default model (checked with the composed configs)
    assert config.pop("name") == name
    assert config.pop("root") == (None if name in EMBEDDED else f"/datasets/{name}")
    assert config.pop("download") is False and isinstance(config.pop("seed"), int)
    defaults = dataset_options(name)
    assert set(config) == set(defaults)
    for key, value in config.items():
        default = list(defaults[key]) if isinstance(defaults[key], tuple) else defaults[key]
        assert value == default, f"{name}.yaml {key}={value} but the loader's default is {default}"
    assert not set(config) & set(COMMON)


def test_an_embedded_config_loads_as_is():
    config = OmegaConf.to_container(OmegaConf.load(CONFIGS / "teacher_linear.yaml"))
    config.pop("defaults")  # Hydra consumes it when composing
    data = load_dataset(**config)
    assert data.name == "teacher_linear" and len(data.train) == 10000
