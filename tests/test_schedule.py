import pytest

from bpgrid import schedule as S

LIAO = {"lr_epochs": [1, 51, 61], "lr_values": [5e-4, 5e-5, 5e-6],
        "batch_size_epochs": [1, 4], "batch_sizes": [100, 500]}


@pytest.mark.parametrize("epoch,lr", [(1, 5e-4), (50, 5e-4), (51, 5e-5), (60, 5e-5),
                                      (61, 5e-6), (65, 5e-6)])
def test_liao_learning_rate_steps_times_scale(epoch, lr):
    assert S.learning_rate(LIAO, epoch, 100) == pytest.approx(lr * 100)
    assert S.learning_rate(LIAO, epoch, 0.01) == pytest.approx(lr * 0.01)


@pytest.mark.parametrize("epoch,size", [(1, 100), (3, 100), (4, 500), (65, 500)])
def test_batch_size_schedule_of_usf_bm(epoch, size):
    assert S.batch_size(LIAO, epoch) == size

