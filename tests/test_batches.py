import pytest
import torch
from torch.utils.data import TensorDataset

from bpgrid.batches import batches, epoch_generator, shuffled
from bpgrid.data import Split

CPU = torch.device("cpu")


@pytest.mark.parametrize("n,size,kept", [(201, 100, 200), (200, 100, 200), (202, 100, 202),
                                         (1, 100, 1), (7, 3, 6)])
def test_shuffled_drops_only_a_lone_last_sample(n, size, kept):
    order = shuffled(n, size, epoch_generator(0, 1))
    assert len(order) == kept and len(set(order.tolist())) == kept
    assert set(order.tolist()) <= set(range(n))


def test_order_depends_on_seed_epoch_and_stream_only():
    def perm(*key):
        return shuffled(50, 10, epoch_generator(*key)).tolist()
    assert perm(3, 2) == perm(3, 2)
    assert len({tuple(perm(*key)) for key in [(3, 2), (4, 2), (3, 1), (3, 2, 1)]}) == 4


def test_in_memory_and_streamed_splits_give_the_same_batches():
    x, y = torch.randn(23, 2, 3), torch.arange(23)
    order = shuffled(23, 5, epoch_generator(0, 1))
    held = list(batches(Split(x, y), order, 5, CPU))
    streamed = list(batches(TensorDataset(x, y), order, 5, CPU))
    assert [len(b) for b, _ in held] == [5, 5, 5, 5, 3]
    for (a, ya), (b, yb) in zip(held, streamed, strict=True):
        assert torch.equal(a, b) and torch.equal(ya, yb)
    assert torch.equal(torch.cat([yb for _, yb in held]), order)  # y is the sample index
