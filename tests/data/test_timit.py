from collections import Counter

import numpy as np
import pytest
import torch

from bpgrid.data import load_dataset

SMALL = {"n_classes": 4, "n_train": 5, "n_test": 2, "feature_dim": 12}


@pytest.fixture
def timit_root(tmp_path):
    """features.npy float32 (N, 12) whose first column is the row index; labels.npy (N,) in 0..5."""
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(6), 8))
    features = rng.normal(size=(len(labels), 12)).astype(np.float32)
    features[:, 0] = np.arange(len(labels))
    np.save(tmp_path / "features.npy", features)
    np.save(tmp_path / "labels.npy", labels)
    return tmp_path


def test_sampled_frames_per_class(timit_root):
    data = load_dataset("timit80", root=timit_root, **SMALL)
    assert data.input_shape == (12,) and data.num_classes == 4
    assert data.train.x.shape == (20, 12) and data.test.x.shape == (8, 12)
    assert Counter(data.train.y.tolist()) == {0: 5, 1: 5, 2: 5, 3: 5}
    torch.testing.assert_close(data.train.x.mean(0), torch.zeros(12), atol=1e-5, rtol=0)
    torch.testing.assert_close(data.train.x.std(0, correction=0), torch.ones(12))
    # the label of every sampled row is that row's label on disk
    labels = np.load(timit_root / "labels.npy")
    mean, std = data.info["mean"][0], data.info["std"][0]
    rows = (data.train.x[:, 0] * std + mean).round().long()
    classes = data.info["classes"]
    assert [classes[y] for y in data.train.y.tolist()] == labels[rows.numpy()].tolist()


def test_seed_picks_the_classes(timit_root):
    infos = [load_dataset("timit80", root=timit_root, seed=s, **SMALL).info for s in (0, 0, 1, 2)]
    assert infos[0]["classes"] == infos[1]["classes"]
    assert any(info["classes"] != infos[0]["classes"] for info in infos[2:])


def test_wrong_feature_width_names_the_file(timit_root):
    with pytest.raises(
        ValueError, match=r"features.npy: float32 \(48, 12\), expected float \(N, 1845\)"
    ):
        load_dataset("timit80", root=timit_root)


def test_label_count_mismatch(timit_root):
    np.save(timit_root / "labels.npy", np.zeros(47, dtype=np.int64))
    with pytest.raises(ValueError, match=r"labels.npy: int64 \(47,\), expected int \(48,\)"):
        load_dataset("timit80", root=timit_root, **SMALL)


def test_truncated_file_names_it(timit_root):
    path = timit_root / "features.npy"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="features.npy: not a readable .npy file"):
        load_dataset("timit80", root=timit_root, **SMALL)


def test_too_few_frames(timit_root):
    with pytest.raises(ValueError, match=r"class 0 has 8 frames, 10 needed"):
        load_dataset("timit80", root=timit_root, **(SMALL | {"n_classes": None, "n_train": 8}))


def test_missing_files_explain_the_format(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset("timit80", root=tmp_path)
    message = str(error.value)
    assert f"{tmp_path}/features.npy not found" in message and "(N, 1845)" in message
    assert "LDC93S1" in message
