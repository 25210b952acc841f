"""The training of one cell, epoch by epoch, with its full state for checkpoints.

The parts come from ``build``, the step (eager or graphed) from ``step``, the test error and BN
statistics from ``evaluation``. No host synchronisation inside an epoch: the step's sums of losses
and error counts stay on the device and are read once per epoch.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import torch
from torch import nn

from bpgrid import schedule as S
from bpgrid.batches import batches, epoch_generator, shuffled
from bpgrid.data import DatasetSplits
from bpgrid.evaluation import evaluate, freeze_bn_statistics, reestimate_bn
from bpgrid.feedback.convert import alignment_stats
from bpgrid.parts import build_cell
from bpgrid.step import GraphedStep, Step, graphable


class Trainer:
    """The epoch loop of one cell (a plain-dict resolved config) and its state."""

    def __init__(self, c: dict[str, Any], data: DatasetSplits | None = None):
        """``data`` replaces the configured dataset (benchmarks on synthetic data)."""
        self.c, self.sched = c, c["schedule"]
        self.parts = build_cell(c, data)
        if self.sched["bn_ema_batches"]:
            freeze_bn_statistics(self.model)
        self.step = Step(self.parts, self.sched["grad_clip"], self.sched["weight_clip"])
        # alignment statistics are Python-side per step, so they keep the eager path
        graphs = c.get("cuda_graphs", True) and not c["alignment"] and graphable(self.parts)
        self.graphed = GraphedStep(self.step) if graphs else None

    @property
    def model(self) -> nn.Module:
        return self.parts.model

    def state(self) -> dict[str, Any]:
        state = {"model": self.model.state_dict(),
                 "optimizer": self.parts.optimizer.state_dict(), "rng": torch.get_rng_state()}
        if self.parts.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.parts.device)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        optimizer, device = self.parts.optimizer, self.parts.device
        self.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if isinstance(optimizer, torch.optim.Adam):
            # the checkpoint may come from the other kind of device: Adam keeps its step count on
            # the CPU, or on the GPU when capturable (as build_optimizer makes it there)
            capturable = device.type == "cuda"
            for group in optimizer.param_groups:
                group["capturable"] = capturable
                for p in group["params"]:
                    slot = optimizer.state.get(p, {})
                    if "step" in slot:
                        slot["step"] = slot["step"].to(p.device if capturable else "cpu")
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], device)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of the protocol; returns its metrics (read from the device once)."""
        start = time.perf_counter()
        lr = S.learning_rate(self.sched, epoch, self.c["lr_scale"])
        for group in self.parts.optimizer.param_groups:
            group["lr"] = lr
        size = S.batch_size(self.sched, epoch)
        train, device = self.parts.data.train, self.parts.device
        self.model.train()
        self.step.loss_sum.zero_()
        self.step.wrong.zero_()
        order = shuffled(len(train), size, epoch_generator(self.c["seed"], epoch))
        if self.graphed is not None:
            self.graphed.run(order.to(device), size)
        else:
            for x, y in batches(train, order, size, device):
                self.step(x, y)
        if self.sched["bn_ema_batches"]:
            ema = shuffled(len(train), size, epoch_generator(self.c["seed"], epoch, 1))
            inputs = (x for x, _ in batches(train, ema, size, device))
            reestimate_bn(self.model, itertools.islice(inputs, self.sched["bn_ema_batches"]),
                          self.sched["bn_ema_alpha"])
        metrics = {"train_loss": self.step.loss_sum.item() / len(order), "lr": lr,
                   "batch_size": size}
        if self.parts.classification:
            metrics["train_error"] = 100.0 * self.step.wrong.item() / len(order)
        metrics["val_error"] = self.evaluate()
        for layer, stats in alignment_stats(self.model).items():
            metrics.update({f"{key}/{layer}": value for key, value in stats.items()})
        metrics["epoch_time"] = time.perf_counter() - start
        return metrics

    def evaluate(self) -> float:
        """Test-split error in % (classification) or mean squared error (regression)."""
        return evaluate(self.model, self.parts.data.test, self.parts.device,
                        self.parts.classification)


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
