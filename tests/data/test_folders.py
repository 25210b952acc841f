from collections import Counter

import pytest
import torch

from bpgrid.data import load_dataset

FACES = {f"person_{i:02d}": 3 + i % 4 for i in range(12)}  # 3..6 images per identity


def test_identities_sampled_with_per_class_counts(make_tree):
    root = make_tree(FACES)
    data = load_dataset("lfw_id", root=root, n_classes=5, n_train=3, n_test=2, image_size=(8, 8))
    assert data.num_classes == 5 and data.input_shape == (3, 8, 8)
    assert Counter(data.train.y.tolist()) == {label: 3 for label in range(5)}
    assert Counter(data.test.y.tolist()) == {label: 2 for label in range(5)}
    classes = data.info["classes"]
    assert all(FACES[c] >= 5 for c in classes)  # only identities with enough images
    assert data.info["per_class"] == {c: [3, 2] for c in classes}
    train, test = set(data.info["train_files"]), set(data.info["test_files"])
    assert len(train) == 15 and len(test) == 10 and not train & test
    assert all(f.split("/")[0] in classes for f in train | test)


def test_same_seed_same_sample_other_seed_other_classes(make_tree):
    root = make_tree(FACES, size=(4, 4))
    options = {"root": root, "n_classes": 4, "n_train": 2, "n_test": 1}
    first = load_dataset("pubfig83_id", seed=1, **options)
    again = load_dataset("pubfig83_id", seed=1, **options)
    other = [load_dataset("pubfig83_id", seed=s, **options).info for s in (2, 3, 4)]
    assert first.info["train_files"] == again.info["train_files"]
    assert torch.equal(first.train.x, again.train.x)
    assert any(info["classes"] != first.info["classes"] for info in other)


def test_a_short_class_is_an_error_naming_it(make_tree):
    root = make_tree({"bedroom": 5, "kitchen": 2, "office": 5}, size=(4, 4))
    with pytest.raises(ValueError, match=r"class 'kitchen' has 2 images, 4 needed"):
        load_dataset("mit_indoor67", root=root, n_classes=None, n_train=3, n_test=1)
    with pytest.raises(ValueError, match=r"3 classes needed, 2 of 3 have enough"):
        load_dataset("mit_indoor67", root=root, n_classes=3, n_train=3, n_test=1)


def test_flowers17_seeded_split_and_streaming(make_tree):
    root = make_tree({f"flower_{i}": 6 for i in range(3)}, size=(10, 7))
    options = {"root": root, "n_classes": 3, "n_train": 4, "n_test": 2, "image_size": (6, 6)}
    memory = load_dataset("flowers17", **options)
    stream = load_dataset("flowers17", max_memory_mb=0, **options)
    assert memory.train.x.shape == (12, 3, 6, 6)
    dims = (0, 2, 3)
    torch.testing.assert_close(memory.train.x.mean(dims), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(memory.train.x.std(dims, correction=0), torch.ones(3))
    for i in (0, 5, 11):
        torch.testing.assert_close(stream.train[i][0], memory.train.x[i], atol=1e-5, rtol=0)
        assert stream.train[i][1] == memory.train.y[i]


def test_grey_images_and_unequal_sizes(make_tree, tmp_path):
    root = make_tree({"a": 2, "b": 3}, mode="L", suffix=".png")
    grey = load_dataset("flowers17", root=root, n_classes=2, n_train=1, n_test=1, channels=1)
    assert grey.input_shape == (1, 10, 12)
    make_tree({"a": 1}, folder="tree", size=(5, 5), seed=1, suffix=".ppm")  # a third, smaller image
    with pytest.raises(ValueError, match=r"differs from .*pass image_size"):
        load_dataset("flowers17", root=root, n_classes=2, n_train=2, n_test=1)


def test_unreadable_jpeg_names_the_file(make_tree):
    root = make_tree({"a": 2, "b": 2}, size=(6, 6))
    jpeg = root / "b" / "001.jpg"
    content = jpeg.read_bytes()
    jpeg.write_bytes(content[: len(content) // 2])  # truncated
    with pytest.raises(ValueError, match=r"b/001.jpg: unreadable image"):
        load_dataset("sufr_w_id", root=root, n_classes=2, n_train=1, n_test=1)


def test_caltech101_reads_torchvision_layout_and_allows_short_test(make_tree, tmp_path):
    tree = tmp_path / "caltech101" / "101_ObjectCategories"
    make_tree({"BACKGROUND_Google": 6, "accordion": 6, "inline_skate": 4}, folder=str(tree))
    data = load_dataset("caltech101", root=tmp_path, n_classes=None, n_train=3, n_test=3)
    assert data.info["per_class"]["inline_skate"] == [3, 1]
    assert data.info["per_class"]["accordion"] == [3, 3]
    assert data.num_classes == 3


def test_caltech256_excludes_clutter(make_tree, tmp_path):
    tree = tmp_path / "caltech256" / "256_ObjectCategories"
    make_tree({"001.ak47": 3, "002.bat": 3, "257.clutter": 3}, folder=str(tree), size=(4, 4))
    data = load_dataset("caltech256_101", root=tmp_path, n_classes=2, n_train=2, n_test=1)
    assert data.info["classes"] == ["001.ak47", "002.bat"]


def test_icub_uses_its_train_and_test_folders(make_tree, tmp_path):
    make_tree({"cup": 3, "book": 2}, folder="icub/train", size=(4, 4))
    make_tree({"cup": 1, "book": 2}, folder="icub/test", size=(4, 4))
    data = load_dataset("icub", root=tmp_path / "icub")
    assert data.info["classes"] == ["book", "cup"]
    assert data.train.y.tolist() == [0, 0, 1, 1, 1] and data.test.y.tolist() == [0, 0, 1]
    make_tree({"ball": 1}, folder="icub/test", size=(4, 4))
    with pytest.raises(ValueError, match=r"class folders differ .*\['ball'\]"):
        load_dataset("icub", root=tmp_path / "icub")


@pytest.mark.parametrize(
    "name, source",
    [
        ("lfw_id", "vis-www.cs.umass.edu/lfw"),
        ("pubfig83_id", "pubfig83"),
        ("sufr_w_id", "sufr"),
        ("flowers17", "flowers/17"),
        ("mit_indoor67", "indoor.html"),
        ("icub", "iCubWorld"),
    ],
)
def test_missing_tree_says_where_layout_and_source(tmp_path, name, source):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset(name, root=tmp_path / "nowhere")
    message = str(error.value)
    assert f"{tmp_path}/nowhere" in message and "<class_name>/<image>" in message
    assert source in message
    with pytest.raises(ValueError, match="cannot be downloaded automatically"):
        load_dataset(name, root=tmp_path / "nowhere", download=True)


def test_missing_caltech_suggests_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"caltech101/101_ObjectCategories not found"):
        load_dataset("caltech101", root=tmp_path)
