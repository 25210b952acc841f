import itertools
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bpgrid.data import (
    DATASETS,
    dataset_label,
    dataset_options,
    default_root,
    folders,
    load_dataset,
    vision,
)
from bpgrid.data.registry import COMMON, EMBEDDED, SOURCES, DatasetDef

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


def test_labels_are_the_tables_row_labels_in_table_2s_order():
    assert [d.label for d in DATASETS.values()] == [
        "MNIST", "CIFAR10", "CIFAR100", "SVHN", "STL10", "Cal101", "Cal256-101", "iCub",
        "Flowers17", "Flowers102", "PubFig83-ID", "SUFR-W-ID", "LFW-ID", "MIT-indoor67", "TIMIT80",
        "digits", "MNIST-1D", "teacher (linear)", "teacher (tanh)"]
    assert dataset_label("caltech256_101") == "Cal256-101"
    assert dataset_label("retired_set") == "retired_set"  # runs of a dataset no longer known
    assert len({d.label for d in DATASETS.values()}) == len(DATASETS)


def test_every_source_is_described_and_embedded_follows_it():
    assert {d.source for d in DATASETS.values()} == set(SOURCES)
    assert EMBEDDED == {"digits", "mnist1d", "teacher_linear", "teacher_nonlinear"}
    assert all(bool(d.layout) != d.embedded for d in DATASETS.values())
    with pytest.raises(ValueError, match="source 'ftp' is not one of embedded, torchvision"):
        DatasetDef("x", vision.mnist, "X", "ftp")


class Fetched(Exception):
    """Raised instead of downloading."""


FILE_DATASETS = [name for name, d in DATASETS.items() if not d.embedded]


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_download_is_offered_exactly_where_torchvision_can_fetch(name, tmp_path, monkeypatch):
    def fetch(*args, **kwargs):
        raise Fetched

    monkeypatch.setattr(vision, "download_with_torchvision", fetch)
    monkeypatch.setattr(folders, "download_with_torchvision", fetch)
    if DATASETS[name].downloadable:
        with pytest.raises(Fetched):
            load_dataset(name, root=tmp_path, download=True)
    else:
        with pytest.raises(ValueError, match=f"{name} cannot be downloaded automatically"):
            load_dataset(name, root=tmp_path, download=True)


def expansions(pattern: str) -> list[str]:
    """Every string a shell brace pattern such as ``{a,b}_{X,y}.bin`` stands for."""
    parts = re.split(r"\{([^}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def test_expansions():
    assert expansions("d/{a,b}_{X,y}.bin") == ["d/a_X.bin", "d/a_y.bin", "d/b_X.bin", "d/b_y.bin"]


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_layout_names_the_first_file_the_loader_misses(name, tmp_path):
    root = tmp_path / "empty"
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(name, root=root)
    missing = Path(re.match(rf"{name}: (.+) not found", str(err.value)).group(1))
    relative = "" if missing == root else missing.relative_to(root).as_posix()
    assert any(e.startswith(relative) for e in expansions(DATASETS[name].layout)), \
        f"{relative} is not in {DATASETS[name].layout}"
