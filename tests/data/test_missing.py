"""bpgrid/data/missing.py and DatasetDef.has_files: which datasets are missing, and how they are
told: every one, sorted, with its layout and whether it can be downloaded."""

import pytest

from bpgrid.data import DATASETS
from bpgrid.data.missing import Missing, MissingData, check_data, missing

FILE_DATASETS = sorted(name for name, d in DATASETS.items() if not d.embedded)


def test_has_files_looks_for_the_layouts_top_folder_with_something_in_it(tmp_path):
    mnist, svhn, caltech = DATASETS["mnist"], DATASETS["svhn"], DATASETS["caltech101"]
    assert not mnist.has_files(tmp_path / "none")
    assert not mnist.has_files(tmp_path)  # empty
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    assert not mnist.has_files(tmp_path)  # MNIST/raw/ empty
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").touch()
    assert mnist.has_files(tmp_path)
    assert svhn.has_files(tmp_path)  # its files lie in the root itself: any entry will do
    assert not caltech.has_files(tmp_path)  # caltech101/101_ObjectCategories/ is not there
    assert DATASETS["digits"].has_files(tmp_path / "none")  # embedded: no files needed


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_every_file_dataset_is_missing_in_an_empty_root_and_found_in_its_layout(name, tmp_path):
    d = DATASETS[name]
    assert not d.has_files(tmp_path)
    head = [p for p in d.layout.split("/")[:-1] if not set(p) & set("{<[")]
    top = tmp_path.joinpath(*head)
    top.mkdir(parents=True, exist_ok=True)
    (top / "x").touch()
    assert d.has_files(tmp_path)


def test_every_missing_dataset_once_sorted_by_name_and_root(tmp_path):
    configs = [{"name": "timit80", "root": str(tmp_path / "t")},
               {"name": "mnist", "root": str(tmp_path / "b")},
               {"name": "mnist", "root": str(tmp_path / "a")},
               {"name": "timit80", "root": str(tmp_path / "t")},
               {"name": "digits", "root": None}]
    assert missing(configs) == [Missing("mnist", tmp_path / "a"), Missing("mnist", tmp_path / "b"),
                                Missing("timit80", tmp_path / "t")]


def test_download_spares_only_what_torchvision_can_fetch(tmp_path):
    root = str(tmp_path)
    assert missing([{"name": "mnist", "root": root, "download": True}]) == []
    assert missing([{"name": "timit80", "root": root, "download": True}]) == [
        Missing("timit80", tmp_path)]


def test_a_relative_root_is_told_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert missing([{"name": "mnist", "root": "data/mnist"}]) == [
        Missing("mnist", tmp_path / "data" / "mnist")]


def test_the_message_gives_each_layout_and_how_to_get_it(tmp_path):
    with pytest.raises(MissingData) as caught:
        check_data([{"name": "timit80", "root": str(tmp_path / "t")},
                    {"name": "cifar10", "root": str(tmp_path / "c")}])
    lines = str(caught.value).splitlines()
    assert lines[0] == "2 datasets missing, so nothing was started:"
    assert lines[1] == (f"  cifar10: no files at {tmp_path}/c; expected {tmp_path}/c/"
                        "cifar-10-batches-py/{data_batch_1..5,test_batch}; "
                        "dataset.download=true fetches it with torchvision")
    assert lines[2].startswith(f"  timit80: no files at {tmp_path}/t; expected {tmp_path}/t/"
                               "{features,labels}.npy; it cannot be downloaded; get it by hand: "
                               "compute frame features from TIMIT")
    assert "download=true" not in lines[2]
    assert lines[3] == "Put the files there, or point dataset.root=PATH at them."
    assert caught.value.missing == [Missing("cifar10", tmp_path / "c"),
                                    Missing("timit80", tmp_path / "t")]


def test_nothing_missing_raises_nothing(tmp_path):
    (tmp_path / "features.npy").touch()
    check_data([{"name": "timit80", "root": str(tmp_path)}, {"name": "mnist1d", "root": None}])
