import random
from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from bpgrid.data import load_dataset

SMALL = {
    "digits": {},
    "mnist1d": {"num_samples": 500},
    "teacher_linear": {"n_train": 200, "n_test": 50},
    "teacher_nonlinear": {"n_train": 200, "n_test": 50},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_embedded_datasets_load_with_the_network_off(no_network, name):
    data = load_dataset(name, **SMALL[name])
    assert len(data.train) > len(data.test) > 0
    assert data.train.x.dtype == torch.float32
    assert tuple(data.train.x.shape[1:]) == data.input_shape
    assert data.info["root"] is None


def test_digits_stratified_split():
    data = load_dataset("digits", seed=3)
    assert data.input_shape == (1, 8, 8) and len(data.train) + len(data.test) == 1797
    assert len(data.test) == 450
    totals, counts = Counter(load_digits().target.tolist()), Counter(data.test.y.tolist())
    assert all(abs(counts[c] - totals[c] / 4) <= 1 for c in range(10))  # stratified
    again = load_dataset("digits", seed=3)
    assert torch.equal(data.test.x, again.test.x)
    assert not torch.equal(load_dataset("digits", seed=4).test.y, data.test.y)


def test_digits_resize_to_rgb():
    data = load_dataset("digits", image_size=(16, 16), channels=3)
    assert data.train.x.shape == (1347, 3, 16, 16)


def test_mnist1d_matches_the_package_and_leaves_global_rngs_alone():
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)
    random.seed(123)
    expected_numpy, expected_python = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    data = load_dataset("mnist1d", seed=42, num_samples=500)
    assert (np.random.random(), random.random()) == (expected_numpy, expected_python)
    assert data.input_shape == (1, 40) and len(data.train) == 400 and data.num_classes == 10
    args = get_dataset_args()
    args.num_samples = 500
    reference = make_dataset(args)
    assert data.train.y.tolist() == reference["y"].tolist()


def test_teacher_linear_is_an_exact_linear_map():
    data = load_dataset("teacher_linear", seed=1, n_train=100, n_test=20)
    assert data.task == "regression" and data.num_classes == 10 and data.input_shape == (30,)
    assert data.train.y.shape == (100, 10) and data.train.y.dtype == torch.float32
    teacher = torch.linalg.lstsq(data.train.x, data.train.y).solution  # inputs not rescaled
    torch.testing.assert_close(data.test.x @ teacher, data.test.y, atol=1e-4, rtol=1e-4)
    assert teacher.abs().max() <= 1
    other = load_dataset("teacher_linear", seed=2, n_train=100, n_test=20)
    assert not torch.allclose(other.train.y, data.train.y)


def test_teacher_nonlinear_is_seeded_and_not_linear():
    options = {"n_train": 300, "n_test": 50, "n_hidden": 20}
    data = load_dataset("teacher_nonlinear", seed=0, **options)
    again = load_dataset("teacher_nonlinear", seed=0, **options)
    assert torch.equal(data.train.y, again.train.y) and data.num_classes == 10
    linear = torch.linalg.lstsq(data.train.x, data.train.y).solution
    assert (data.train.x @ linear - data.train.y).abs().max() > 1e-2


def test_vectors_refuse_image_options():
    with pytest.raises(ValueError, match=r"teacher_linear inputs have shape \(30,\), not images"):
        load_dataset("teacher_linear", n_train=10, n_test=5, image_size=(4, 4))
