import numpy as np
import pytest
import torch

from bpgrid.data import Split, StreamingSplit, load_dataset
from bpgrid.data.formats import read_idx


def assert_standardized(x: torch.Tensor) -> None:
    dims = [0, *range(2, x.ndim)]
    torch.testing.assert_close(x.mean(dims), torch.zeros(x.shape[1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dims, correction=0), torch.ones(x.shape[1]), atol=1e-4, rtol=0)


def test_mnist_shapes_labels_and_train_statistics(mnist_root):
    data = load_dataset("mnist", root=mnist_root)
    assert isinstance(data.train, Split) and isinstance(data.test, Split)
    assert data.train.x.shape == (30, 1, 28, 28) and data.test.x.shape == (10, 1, 28, 28)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert data.task == "classification"
    assert data.train.y.dtype == torch.int64
    assert data.train.y.tolist() == [i % 10 for i in range(30)]
    assert data.test.y.tolist() == list(range(10))[::-1]
    assert_standardized(data.train.x)
    assert len(data.info["files"]) == 4 and data.info["files"][0].endswith(".gz")


def test_test_split_uses_train_statistics(mnist_root):
    data = load_dataset("mnist", root=mnist_root)
    raw = mnist_root / "MNIST" / "raw"
    train = torch.from_numpy(read_idx(raw / "train-images-idx3-ubyte.gz")).float() / 255
    test = torch.from_numpy(read_idx(raw / "t10k-images-idx3-ubyte")).float()[:, None] / 255
    mean, std = train.mean(), train.std(correction=0)
    assert data.info["mean"] == pytest.approx([mean.item()])
    assert data.info["std"] == pytest.approx([std.item()])
    torch.testing.assert_close(data.test.x, (test - mean) / std)


def test_resize_and_grey_to_rgb(mnist_root):
    data = load_dataset("mnist", root=mnist_root, image_size=(32, 32), channels=3)
    assert data.train.x.shape == (30, 3, 32, 32) and data.input_shape == (3, 32, 32)
    torch.testing.assert_close(data.train.x[:, 0], data.train.x[:, 2])
    assert_standardized(data.train.x)


def test_tensors_on_requested_device(mnist_root):
    data = load_dataset("mnist", root=mnist_root, device="meta")
    assert data.train.x.device.type == "meta" and data.test.y.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_tensors_on_gpu(mnist_root):
    data = load_dataset("mnist", root=mnist_root, device="cuda")
    assert data.train.x.is_cuda and data.test.y.is_cuda


def test_streaming_gives_the_in_memory_items(mnist_root):
    memory = load_dataset("mnist", root=mnist_root, image_size=(14, 14))
    stream = load_dataset("mnist", root=mnist_root, image_size=(14, 14), max_memory_mb=0)
    assert isinstance(stream.train, StreamingSplit) and stream.info["streamed"]["train"]
    assert stream.input_shape == memory.input_shape and len(stream.train) == 30
    assert stream.info["mean"] == pytest.approx(memory.info["mean"])
    for split in ("train", "test"):
        streamed = getattr(stream, split)
        x = torch.stack([streamed[i][0] for i in range(len(streamed))])
        y = torch.stack([streamed[i][1] for i in range(len(streamed))])
        torch.testing.assert_close(x, getattr(memory, split).x, atol=1e-5, rtol=0)
        assert torch.equal(y, getattr(memory, split).y)


def test_cifar10(cifar10_root):
    data = load_dataset("cifar10", root=cifar10_root)
    assert data.train.x.shape == (20, 3, 32, 32) and data.test.x.shape == (6, 3, 32, 32)
    assert data.train.y.tolist() == [0, 1, 2, 3] * 5
    assert_standardized(data.train.x)


def test_cifar10_rgb_to_grey(cifar10_root):
    data = load_dataset("cifar10", root=cifar10_root, channels=1, image_size=(16, 16))
    assert data.train.x.shape == (20, 1, 16, 16)


def test_cifar100_fine_labels(cifar100_root):
    data = load_dataset("cifar100", root=cifar100_root)
    assert data.num_classes == 100 and data.train.x.shape == (20, 3, 32, 32)
    assert data.train.y.tolist() == list(range(20))


def test_corrupt_cifar_batch_fails_with_its_name(cifar10_root):
    (cifar10_root / "cifar-10-batches-py" / "data_batch_4").write_bytes(b"\x80\x02}q\x00")
    with pytest.raises(ValueError, match="data_batch_4"):
        load_dataset("cifar10", root=cifar10_root)


def test_svhn(svhn_root):
    data = load_dataset("svhn", root=svhn_root)
    assert data.train.x.shape == (12, 3, 32, 32) and data.test.x.shape == (5, 3, 32, 32)
    assert data.test.y.tolist() == [1, 2, 3, 4, 5]
    assert data.train.y[9] == 0  # label 10 on disk


def test_stl10(stl10_root):
    data = load_dataset("stl10", root=stl10_root)
    assert data.train.x.shape == (6, 3, 96, 96) and data.test.y.tolist() == [0, 1, 2, 3]
    mean, std = torch.tensor(data.info["mean"]), torch.tensor(data.info["std"])
    pixels = data.test.x[2] * std[:, None, None] + mean[:, None, None]
    expected = torch.from_numpy(np.load(stl10_root / "images.npy")[2]).float() / 255
    torch.testing.assert_close(pixels, expected, atol=1e-5, rtol=0)


def test_flowers102_trains_on_train_and_val(flowers102_root):
    data = load_dataset("flowers102", root=flowers102_root, image_size=(8, 8))
    assert data.num_classes == 102 and data.input_shape == (3, 8, 8)
    assert len(data.train) == 6 and len(data.test) == 6
    assert data.train.y.tolist() == [0, 1, 2, 0, 1, 2]
    assert data.info["train_sets"] == ["trnid", "valid"]
    only_train = load_dataset("flowers102", root=flowers102_root, train_on_val=False)
    assert len(only_train.train) == 3 and only_train.input_shape == (3, 16, 20)


def test_unreadable_flower_image(flowers102_root):
    (flowers102_root / "flowers-102" / "jpg" / "image_00009.jpg").write_bytes(b"\xff\xd8junk")
    with pytest.raises(ValueError, match="image_00009.jpg: unreadable image"):
        load_dataset("flowers102", root=flowers102_root, image_size=(8, 8))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("cifar10", "cifar-10-batches-py/data_batch_1"),
        ("cifar100", "cifar-100-python/train"),
        ("svhn", "train_32x32.mat"),
        ("stl10", "stl10_binary/train_X.bin"),
        ("flowers102", "flowers-102/jpg"),
    ],
)
def test_missing_files_say_where_and_how(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset(name, root=tmp_path / "absent")
    message = str(error.value)
    assert f"{tmp_path}/absent/{expected} not found" in message
    assert "Expected layout" in message and "dataset.download=true" in message


def test_download_fetches_with_torchvision_then_reads(tmp_path, monkeypatch, mnist_root):
    import torchvision.datasets

    calls = []

    class FakeMNIST:  # stands in for the network: "downloads" by copying the fixture's files
        def __init__(self, root, download, train):
            calls.append((root, download, train))
            (tmp_path / "fresh" / "MNIST").symlink_to(mnist_root / "MNIST")

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    data = load_dataset("mnist", root=tmp_path / "fresh", download=True)
    assert calls == [(str(tmp_path / "fresh"), True, True)]
    assert data.train.x.shape == (30, 1, 28, 28)
