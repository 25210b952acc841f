"""The training of an array of cells, epoch by epoch, with each member's state for checkpoints.

Cells of one structure (``bpgrid.arrays.structure``) train as one array; a single cell is an array
of one, ``Trainer([config])``, on the same path. Each member keeps what its cell would have: its
net drawn under its seed, its batch order (per seed and epoch), its learning rate and optimizer
numbers, its random draws from its own generator, its metrics. The parts come from ``parts``, the
step (eager or graphed) from ``step``, the test errors and BN statistics from ``evaluation``. No
host synchronisation inside an epoch: the members' sums of losses and error counts stay on the
device and are read once per epoch.

A member whose training loss turns non-finite (Liao et al.'s exploding gradients) is *frozen* at
the end of that epoch: its history ends there and its state stays what it was then, while the
others go on. Its part of the array keeps computing, unread; no operation mixes members, so its
numbers never reach another member's.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from bpgrid import schedule as S
from bpgrid.arrays.net import ArrayNet
from bpgrid.batches import batches, member_orders
from bpgrid.data import DatasetSplits
from bpgrid.evaluation import evaluate, freeze_bn_statistics, reestimate_bn
from bpgrid.parts import build_array
from bpgrid.step import GraphedStep, Step, graphable


@dataclass
class MemberProgress:
    """A member's metrics per epoch (each with its ``epoch``), and its state when frozen."""

    history: list[dict[str, float]] = field(default_factory=list)
    frozen_state: dict[str, Any] | None = None

    @property
    def diverged(self) -> bool:
        """Its last epoch's training loss was not finite: it trains no more."""
        return bool(self.history) and not math.isfinite(self.history[-1]["train_loss"])


class Trainer:
    """The epoch loop of an array of cells (plain-dict resolved configs of one structure) and
    each member's state."""

    def __init__(self, configs: Sequence[dict[str, Any]], data: DatasetSplits | None = None, *,
                 dtype: torch.dtype | None = None):
        """``data`` replaces the configured dataset (benchmarks, tests on synthetic data);
        ``dtype`` casts nets and data (torch.float64 for the exactness tests)."""
        self.configs = list(configs)
        self.parts = build_array(self.configs, data, dtype)
        self.c, self.sched = self.configs[0], self.configs[0]["schedule"]  # the shared structure
        self.progress = [MemberProgress() for _ in self.configs]
        if self.sched["bn_ema_batches"]:
            freeze_bn_statistics(self.net)
        self.step = Step(self.parts, self.sched["grad_clip"], self.sched["weight_clip"])
        # alignment statistics are Python-side per step, so they keep the eager path
        graphs = self.c.get("cuda_graphs", True) and not self.c["alignment"] \
            and graphable(self.parts)
        self.graphed = GraphedStep(self.step) if graphs else None

    @property
    def net(self) -> ArrayNet:
        return self.parts.net

    @property
    def alive(self) -> list[bool]:
        """Per member: it has not diverged, so it still trains."""
        return [not p.diverged for p in self.progress]

    def state(self, k: int) -> dict[str, Any]:
        """Member k's state as its cell's: its plain net's ``state_dict`` (``model``), its plain
        optimizer's (``optimizer``) and its generator's (``rng`` on the CPU, ``cuda_rng`` on a
        GPU); the state it was frozen with once it diverged."""
        frozen = self.progress[k].frozen_state
        return frozen if frozen is not None else self._state(k)

    def _state(self, k: int) -> dict[str, Any]:
        member = self.parts.members[k]
        model = self.net.export(k, member.model)
        state = {"model": {key: t.clone() for key, t in model.state_dict().items()},
                 "optimizer": self.parts.optimizer.member_state(k, member.optimizer)}
        state[_rng_key(member.generator)] = member.generator.get_state()
        return state

    def load_state(self, k: int, state: dict[str, Any],
                   history: Sequence[dict[str, float]] | None = None) -> None:
        """Member k resumes from ``state`` (see ``state``; a checkpoint from either kind of
        device) and, when given, the ``history`` of its epochs so far. A generator state of the
        other kind of device is left out: the member's draws then go on from its seed."""
        member = self.parts.members[k]
        member.model.load_state_dict(state["model"])
        self.net.load(k, member.model)
        self.parts.optimizer.load_member_state(k, state["optimizer"], member.optimizer)
        key = _rng_key(member.generator)
        if key in state:
            member.generator.set_state(state[key])
        if history is not None:
            progress = self.progress[k] = MemberProgress(list(history))
            if progress.diverged:
                progress.frozen_state = state

    def train_epoch(self, epoch: int) -> list[dict[str, float] | None]:
        """One epoch of the protocol for every member still training; returns each member's
        metrics (read from the device once), None for a member frozen before this epoch."""
        start = time.perf_counter()
        alive = self.alive
        if not any(alive):
            raise RuntimeError("every member of the array has diverged: nothing to train")
        lrs = [S.learning_rate(c["schedule"], epoch, c["lr_scale"]) for c in self.configs]
        self.parts.optimizer.set_lr(lrs)
        size = S.batch_size(self.sched, epoch)
        seeds = [c["seed"] for c in self.configs]
        train, device = self.parts.data.train, self.parts.device
        dtype = next(self.net.parameters()).dtype
        self.net.train()
        self.step.loss_sum.zero_()
        self.step.wrong.zero_()
        orders = member_orders(len(train), size, seeds, epoch)
        if self.graphed is not None:
            self.graphed.run(orders.to(device), size)
        else:
            for x, y in batches(train, orders, size, device, dtype):
                self.step(x, y)
        if self.sched["bn_ema_batches"]:
            ema = member_orders(len(train), size, seeds, epoch, stream=1)
            inputs = (x for x, _ in batches(train, ema, size, device, dtype))
            reestimate_bn(self.net, itertools.islice(inputs, self.sched["bn_ema_batches"]),
                          self.sched["bn_ema_alpha"])
        n = orders.shape[1]
        losses, wrong = (self.step.loss_sum / n).tolist(), self.step.wrong.tolist()
        val = self.evaluate()
        results: list[dict[str, float] | None] = []
        for k, training in enumerate(alive):
            metrics = None
            if training:
                metrics = {"train_loss": losses[k], "lr": lrs[k], "batch_size": size}
                if self.parts.classification:
                    metrics["train_error"] = 100.0 * wrong[k] / n
                metrics["val_error"] = val[k]
                metrics.update(self.net.member_alignment(k))
            results.append(metrics)
        share = (time.perf_counter() - start) / sum(alive)
        for k, metrics in enumerate(results):
            if metrics is not None:
                metrics["epoch_time"] = share  # the member's share of the array's epoch
                progress = self.progress[k]
                progress.history.append({"epoch": epoch, **metrics})
                if progress.diverged:
                    progress.frozen_state = self._state(k)
        return results

    def evaluate(self) -> list[float]:
        """Each member's test-split error in % (classification) or mean squared error
        (regression)."""
        return evaluate(self.net, self.parts.data.test, self.parts.device,
                        self.parts.classification)


def _rng_key(generator: torch.Generator) -> str:
    return "cuda_rng" if generator.device.type == "cuda" else "rng"


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
