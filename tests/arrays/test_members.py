"""An array's members one by one (bpgrid/trainer.py): a member that diverges is frozen while the
others go on untouched, and a member's state is its cell's, so it moves between arrays and to a
plain net and optimizer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from array_runs import MEMBERS, configs, input_shape, state_differences, synthetic

from bpgrid.optim import build_optimizer
from bpgrid.parts import plain_model, trainable
from bpgrid.trainer import Trainer

TAME, WILD = ["feedback=usf", "lr_scale=1", "seed=1"], ["feedback=usf", "lr_scale=1e40", "seed=2"]
OTHER = ["feedback=kp", "lr_scale=3", "seed=3"]


def timeless(metrics: dict | None) -> dict | None:
    """Metrics without the epoch's time, which no two runs share."""
    return None if metrics is None else {k: v for k, v in metrics.items() if k != "epoch_time"}


def cells_of(members):
    return configs("mlp", "optimizer=sgd", "model.dropout=0.2", members=members)


def run(cells, epochs=3):
    trainer = Trainer(cells, synthetic(input_shape("mlp")), dtype=torch.float64)
    return trainer, [trainer.train_epoch(epoch) for epoch in range(1, epochs + 1)]


def test_a_diverging_member_is_frozen_and_the_others_are_untouched():
    cells = cells_of([TAME, WILD, OTHER])
    wild, history = run(cells)
    tame, control = run([cells[0], cells_of([TAME, TAME])[1], cells[2]])
    assert not math.isfinite(history[0][1]["train_loss"])  # it diverged in epoch 1 ...
    assert history[1][1] is None and history[2][1] is None  # ... and trained no more
    assert wild.alive == [True, False, True] and wild.progress[1].diverged
    assert [h["epoch"] for h in wild.progress[1].history] == [1]
    frozen = wild.state(1)
    assert frozen is wild.progress[1].frozen_state  # the state it ended epoch 1 with
    for k in (0, 2):  # the others, bitwise as in an array without the wild member
        assert [timeless(h[k]) for h in history] == [timeless(h[k]) for h in control]
        assert max(state_differences(wild.state(k), tame.state(k)).values()) == 0
        alone, alone_history = run([cells[k]])
        assert max(state_differences(wild.state(k), alone.state(0)).values()) == 0
        for mine, theirs in zip(history, alone_history, strict=True):
            assert timeless(mine[k]) == timeless(theirs[0])


def test_an_array_whose_members_all_diverged_trains_no_more():
    trainer, _ = run(cells_of([WILD]), epochs=1)
    assert trainer.alive == [False]
    with pytest.raises(RuntimeError, match="every member of the array has diverged"):
        trainer.train_epoch(2)


def test_a_resumed_member_whose_history_diverged_stays_frozen():
    trainer, _ = run(cells_of([WILD, TAME]), epochs=1)
    state, history = trainer.state(0), trainer.progress[0].history
    again = Trainer(trainer.configs, synthetic(input_shape("mlp")), dtype=torch.float64)
    again.load_state(0, state, history)
    again.load_state(1, trainer.state(1), trainer.progress[1].history)
    assert again.alive == [False, True] and again.train_epoch(2)[0] is None


def test_a_member_moved_to_another_array_continues_exactly():
    """brsf and dropout draw from the member's generator, BM keeps momentum: all of it moves."""
    members = [MEMBERS[3], MEMBERS[1], MEMBERS[6]]  # brsf, usf, kp
    cells = configs("small_cnn", "norm=bn", "optimizer=bm1", "model.dropout=0.3",
                    members=members)
    data = synthetic(input_shape("small_cnn"))
    first = Trainer(cells, data, dtype=torch.float64)
    for epoch in (1, 2):
        first.train_epoch(epoch)
    moved = Trainer([cells[2], cells[0]], data, dtype=torch.float64)  # other slots, other K
    for slot, k in ((0, 2), (1, 0)):
        moved.load_state(slot, first.state(k), first.progress[k].history)
    got, want = moved.train_epoch(3), first.train_epoch(3)
    for slot, k in ((0, 2), (1, 0)):
        assert timeless(got[slot]) == timeless(want[k])
        assert max(state_differences(moved.state(slot), first.state(k)).values()) <= 1e-9
        assert moved.progress[slot].history[-1]["epoch"] == 3


@pytest.mark.parametrize("optimizer", ["sgd", "bm3", "adam"])
def test_a_members_state_is_a_plain_net_and_optimizer_that_take_its_next_step(optimizer):
    """The HFTA check over time: after an epoch, load member 1's state into its plain net and
    optimizer (as a researcher would from its checkpoint); one plain step and one array step on
    the same batch give the same net. (Without BN: a plain net's NCHW kernels round otherwise
    than an array's NHWC ones, and a bias just before BN has a gradient of rounding noise, whose
    sign Batch Manhattan takes.)"""
    cells = configs("small_cnn", f"optimizer={optimizer}",
                    members=[MEMBERS[0], MEMBERS[4], MEMBERS[5]])
    data = synthetic(input_shape("small_cnn"))
    trainer = Trainer(cells, data, dtype=torch.float64)
    trainer.train_epoch(1)
    state, c = trainer.state(1), cells[1]
    net = plain_model(c, data).double()
    net.load_state_dict(state["model"])
    plain = build_optimizer(c["optimizer"], trainable(net))
    plain.load_state_dict(state["optimizer"])
    for group in plain.param_groups:
        group["lr"] = state["optimizer"]["param_groups"][0]["lr"]
    x, y = data.train.x[:10].double(), data.train.y[:10]
    xs = x.expand(3, *x.shape).contiguous()
    ys = y.expand(3, *y.shape)
    trainer.net.train()
    trainer.step(xs, ys)
    net.train()
    F.cross_entropy(net(x), y).backward()
    plain.step()
    mine = trainer.net.export(1, plain_model(c, data).double()).state_dict()
    for key, value in net.state_dict().items():
        assert torch.allclose(mine[key], value, rtol=1e-9, atol=1e-12), key
