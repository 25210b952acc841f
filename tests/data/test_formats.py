import pickle

import numpy as np
import pytest
import scipy.io

from bpgrid.data.formats import (
    read_cifar_batch,
    read_idx,
    read_mat,
    read_stl_images,
    read_stl_labels,
    read_svhn,
)


def test_idx_raw_and_gzipped(mnist_root):
    raw = mnist_root / "MNIST" / "raw"
    images = read_idx(raw / "train-images-idx3-ubyte.gz")
    assert images.shape == (30, 28, 28) and images.dtype == np.uint8
    assert read_idx(raw / "t10k-labels-idx1-ubyte").tolist() == list(range(10))[::-1]


def test_truncated_idx_names_the_file(mnist_root):
    path = mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: truncated"):
        read_idx(path)


def test_truncated_gzip_idx_names_the_file(mnist_root):
    path = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: unreadable idx"):
        read_idx(path)


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(b"\x12\x34\x08\x01garbage")
    with pytest.raises(ValueError, match="labels-idx1-ubyte: not an idx file"):
        read_idx(path)


def test_cifar_batch_round_trip(cifar10_root):
    data, labels = read_cifar_batch(cifar10_root / "cifar-10-batches-py" / "test_batch", "labels")
    batch = pickle.loads((cifar10_root / "cifar-10-batches-py" / "test_batch").read_bytes())
    assert data.shape == (6, 3, 32, 32)
    assert np.array_equal(data.reshape(6, -1), batch["data"])
    assert labels.tolist() == batch["labels"]


@pytest.mark.parametrize("content", [b"not a pickle at all", None])
def test_cifar_batch_that_does_not_unpickle(cifar10_root, content):
    path = cifar10_root / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(content or path.read_bytes()[:500])
    with pytest.raises(ValueError, match="data_batch_3: not a readable CIFAR batch"):
        read_cifar_batch(path, "labels")


def test_cifar_batch_with_wrong_shapes(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"test_batch: CIFAR batch has data \(2, 100\)"):
        read_cifar_batch(path, "labels")


def test_svhn_maps_label_10_to_digit_0(svhn_root):
    images, labels = read_svhn(svhn_root / "train_32x32.mat")
    raw = scipy.io.loadmat(svhn_root / "train_32x32.mat")
    assert images.shape == (12, 3, 32, 32)
    assert np.array_equal(images[5], raw["X"][:, :, :, 5].transpose(2, 0, 1))
    assert labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]


def test_corrupt_mat_names_the_file(svhn_root):
    path = svhn_root / "test_32x32.mat"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="test_32x32.mat: not a readable .mat file"):
        read_svhn(path)


def test_mat_missing_key(tmp_path):
    scipy.io.savemat(tmp_path / "setid.mat", {"trnid": np.ones((1, 2))})
    with pytest.raises(ValueError, match=r"setid.mat: .mat file lacks \['tstid'\]"):
        read_mat(tmp_path / "setid.mat", ("trnid", "tstid"))


def test_stl_column_major_images(stl10_root):
    images = read_stl_images(stl10_root / "stl10_binary" / "test_X.bin")
    assert np.array_equal(images, np.load(stl10_root / "images.npy"))
    labels = read_stl_labels(stl10_root / "stl10_binary" / "test_y.bin", len(images))
    assert labels.tolist() == [0, 1, 2, 3]


def test_truncated_stl_names_the_file(stl10_root):
    path = stl10_root / "stl10_binary" / "train_X.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="train_X.bin: .* not a whole number"):
        read_stl_images(path)
    with pytest.raises(ValueError, match="train_y.bin: 6 labels"):
        read_stl_labels(stl10_root / "stl10_binary" / "train_y.bin", 7)


def test_idx_agrees_with_torchvision_reader(mnist_root):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = mnist_root / "MNIST" / "raw"
    images, labels = raw / "t10k-images-idx3-ubyte", raw / "t10k-labels-idx1-ubyte"
    assert np.array_equal(read_idx(images), read_image_file(str(images)).numpy())
    assert np.array_equal(read_idx(labels), read_label_file(str(labels)).numpy())
