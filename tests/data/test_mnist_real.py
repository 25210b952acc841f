"""The real MNIST files (LeCun, Cortes & Burges), read through bpgrid's loader and trained on.

The files are looked up in ``$BPGRID_MNIST_DIR`` or, when that is unset, in ``shared/data/mnist``
beside the repository's checkout (``<somewhere>/main`` and ``<somewhere>/shared/data/mnist``),
in torchvision's layout: ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``. Without
them these tests skip; a ``BPGRID_MNIST_DIR`` that does not hold them fails them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from pathlib import Path

import pytest
import torch
from composing import compose_config, local_overrides

from bpgrid.cell import run_cell
from bpgrid.data import load_dataset
from bpgrid.data.formats import read_idx

FILES = {  # name: (shape, bytes and MD5 of the uncompressed idx file, from the data's README)
    "train-images-idx3-ubyte": ((60000, 28, 28), 47040016, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": ((60000,), 60008, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": ((10000, 28, 28), 7840016, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": ((10000,), 10008, "27ae3e4e09519cfbb04c329615203637"),
}
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def mnist_dir() -> Path | None:
    """Where the real files are, or None (skip) when they are not beside the checkout."""
    given = os.environ.get("BPGRID_MNIST_DIR")
    root = Path(given) if given else Path(__file__).resolve().parents[3] / "shared/data/mnist"
    if (root / "MNIST" / "raw").is_dir():
        return root
    if given:
        pytest.fail(f"BPGRID_MNIST_DIR={given} has no MNIST/raw/ folder")
    return None


@pytest.fixture(scope="module")
def root() -> Path:
    found = mnist_dir()
    if found is None:
        pytest.skip("no real MNIST files: set BPGRID_MNIST_DIR or put them in "
                    f"{Path(__file__).resolve().parents[3] / 'shared/data/mnist'}")
    return found


def raw_file(root: Path, name: str) -> Path:
    return root / "MNIST" / "raw" / f"{name}.gz"


@pytest.mark.parametrize("name", FILES)
def test_real_file_has_the_published_md5_and_shape(root, name):
    shape, size, md5 = FILES[name]
    with gzip.open(raw_file(root, name)) as file:
        data = file.read()
    assert (len(data), hashlib.md5(data).hexdigest()) == (size, md5)
    assert read_idx(raw_file(root, name)).shape == shape


def test_loader_gives_60000_train_and_10000_test_digits_with_the_known_counts(root):
    data = load_dataset("mnist", root=root)
    assert data.train.x.shape == (60000, 1, 28, 28) and data.test.x.shape == (10000, 1, 28, 28)
    assert data.num_classes == 10 and data.input_shape == (1, 28, 28)
    assert torch.bincount(data.train.y).tolist() == TRAIN_COUNTS
    assert torch.bincount(data.test.y).tolist() == TEST_COUNTS
    # the widely quoted MNIST pixel statistics (inputs in [0, 1])
    assert data.info["mean"] == pytest.approx([0.1307], abs=1e-4)
    assert data.info["std"] == pytest.approx([0.3081], abs=1e-4)


@pytest.mark.slow
def test_one_epoch_of_sgd_on_liao_mnist_net_reaches_under_3_percent(root, tmp_path):
    """Liao et al. Table 1's MNIST net, their protocol, one epoch at LR scale 100 (base LR 5e-2):
    about 1.3% test error measured; a pipeline that misreads images or labels stays near 90%."""
    cfg = compose_config([*local_overrides(tmp_path), "dataset=mnist", f"dataset.root={root}",
                          "method=sgd", "lr_scale=100", "schedule.epochs=1"])
    assert cfg.model.name == "liao_mnist" and cfg.schedule.name == "liao"
    result = run_cell(cfg)
    assert result.status == "done", result.error
    assert result.best_val_error < 3.0


def copy_with(root: Path, tmp_path: Path, name: str, content: bytes) -> Path:
    """A copy of the real files under tmp_path in which ``name`` (.gz) holds ``content``."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for other in FILES:
        if other != name:
            (raw / f"{other}.gz").symlink_to(raw_file(root, other))
    (raw / f"{name}.gz").write_bytes(content)
    return raw / f"{name}.gz"


def idx_bytes(root: Path, name: str) -> bytes:
    with gzip.open(raw_file(root, name)) as file:
        return file.read()


CORRUPTIONS = {
    # name: (file, how its content is spoilt, the error after the file's path)
    "gzip cut short": ("train-images-idx3-ubyte",
                       lambda root, name: raw_file(root, name).read_bytes()[:500_000],
                       "unreadable idx file (Compressed file ended"),
    "not gzip": ("train-labels-idx1-ubyte", idx_bytes, "unreadable idx file (Not a gzipped file"),
    "idx cut short": ("t10k-images-idx3-ubyte",
                      lambda root, name: gzip.compress(idx_bytes(root, name)[:-28 * 28]),
                      "truncated or padded idx file (7839232 bytes, 7840016 expected)"),
    "header cut short": ("t10k-labels-idx1-ubyte",
                         lambda root, name: gzip.compress(idx_bytes(root, name)[:6]),
                         "truncated idx file (6 bytes, shorter than its 8-byte header)"),
    "wrong magic": ("t10k-labels-idx1-ubyte",
                    lambda root, name: gzip.compress(b"\x08\x03" + idx_bytes(root, name)[2:]),
                    "not an idx file (bad magic number)"),
    "labels for images": ("train-images-idx3-ubyte",
                          lambda root, name: raw_file(root, "train-labels-idx1-ubyte").read_bytes(),
                          "holds an array of shape (60000,), not (N, height, width) images"),
    "label not a digit": ("t10k-labels-idx1-ubyte",
                          lambda root, name: gzip.compress(idx_bytes(root, name)[:-1] + b"\xc8"),
                          "holds labels from 0 to 200, not digits 0..9"),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_corrupted_copy_fails_naming_the_file(root, tmp_path, corruption):
    name, spoil, message = CORRUPTIONS[corruption]
    path = copy_with(root, tmp_path, name, spoil(root, name))
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        load_dataset("mnist", root=tmp_path)

