"""The training of one cell, epoch by epoch, with its full state for checkpoints.

No host synchronisation inside an epoch: losses and error counts accumulate on the device and are
read once per epoch. On a GPU with the data on the device, the training step is captured once as
a CUDA graph and replayed for every full batch: Liao et al.'s nets at batch 100 run ~150 small
kernels a step, and launching them from Python takes several times longer than running them.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from bpgrid import schedule as S
from bpgrid.data import DatasetSplits, Split, load_dataset
from bpgrid.feedback.convert import alignment_stats
from bpgrid.losses import LOSSES
from bpgrid.models import build_model, model_input_shape
from bpgrid.optim import BatchManhattan

EVAL_BATCH = 1000
WARMUP_STEPS = 3  # eager steps before the first capture: optimizer state, cuDNN/cuBLAS set-up


@functools.lru_cache(maxsize=1)
def _load(arguments: str) -> DatasetSplits:
    """load_dataset, kept for the next cell of the same process: a worker runs a grid's cells
    grouped by dataset, so each dataset is read (or generated) once per worker. Training only
    reads the splits."""
    return load_dataset(**json.loads(arguments))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(cfg: dict, params, capturable: bool = False) -> torch.optim.Optimizer:
    """SGD (setting 0), Batch Manhattan (settings 1-3) or Adam; the LR is set every epoch.

    ``capturable`` keeps Adam's step count on the device, so its step can sit in a CUDA graph
    (SGD's and Batch Manhattan's steps can as they are)."""
    lr = 1.0  # placeholder, replaced by the schedule before the first step
    if cfg["name"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"],
                               weight_decay=cfg["weight_decay"])
    if cfg["name"] == "bm":
        return BatchManhattan(params, lr=lr, setting=cfg["setting"], momentum=cfg["momentum"],
                              weight_decay=cfg["weight_decay"])
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg["betas"]),
                            weight_decay=cfg["weight_decay"], capturable=capturable)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """The shuffling order of an epoch depends on (seed, epoch) only, so a resumed cell repeats
    it exactly."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7 + stream)


class Trainer:
    """Dataset, model and optimizer of one cell (a plain-dict resolved config)."""

    def __init__(self, c: dict[str, Any], data: DatasetSplits | None = None):
        """``data`` replaces the configured dataset (benchmarks on synthetic data)."""
        self.c, self.sched = c, c["schedule"]
        self.device = resolve_device(c["device"])
        model_cfg = dict(c["model"])
        model_name = model_cfg.pop("name")
        shape = model_input_shape(model_name)
        image = shape is not None and len(shape) == 3
        self.data = data or _load(json.dumps({
            **c["dataset"], "image_size": shape[1:] if image else None,
            "channels": shape[0] if image else None, "device": str(self.device),
            "max_memory_mb": c["max_memory_mb"]}, sort_keys=True))
        self.classification = self.data.task == "classification"
        torch.manual_seed(c["seed"])
        feedback = dict(c["feedback"])
        rule, layers = feedback.pop("name"), feedback.pop("layers", "all")
        self.model = build_model(
            model_name, input_shape=self.data.input_shape, num_classes=self.data.num_classes,
            feedback=rule, feedback_layers=layers, feedback_options=feedback,
            norm=c["norm"]["name"], alignment=c["alignment"], **model_cfg).to(self.device)
        on_gpu = self.device.type == "cuda"
        if on_gpu and len(self.data.input_shape) == 3:
            # cuDNN's NHWC kernels: 18% less time an epoch for Liao's CIFAR net on an H100
            self.model.to(memory_format=torch.channels_last)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(c["optimizer"], trainable, capturable=on_gpu)
        self.loss_fn = LOSSES[self.sched["loss"] if self.classification else "mse"]
        if self.sched["bn_ema_batches"]:
            S.freeze_bn_statistics(self.model)
        # the epoch's sums, on the device; a captured step adds to these very tensors
        self.loss_sum = torch.zeros((), device=self.device)
        self.wrong = torch.zeros((), device=self.device, dtype=torch.long)
        # alignment statistics are Python-side per step, so they keep the eager path
        self.graphed = (on_gpu and c.get("cuda_graphs", True) and not c["alignment"]
                        and isinstance(self.data.train, Split))
        self.eager_steps = 0  # full-size eager steps so far (graphs need WARMUP_STEPS first)
        self.captured: _CapturedStep | None = None

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if isinstance(self.optimizer, torch.optim.Adam):
            # the checkpoint may come from the other kind of device: Adam keeps its step count on
            # the CPU, or on the GPU when capturable (as make_optimizer makes it there)
            capturable = self.device.type == "cuda"
            for group in self.optimizer.param_groups:
                group["capturable"] = capturable
                for p in group["params"]:
                    slot = self.optimizer.state.get(p, {})
                    if "step" in slot:
                        slot["step"] = slot["step"].to(p.device if capturable else "cpu")
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    # ------------------------------------------------------------------ batches

    @staticmethod
    def order(n: int, size: int, generator: torch.Generator | None) -> Tensor:
        """Sample order: the generator's permutation (training), or 0..n-1 (evaluation, None).

        A final training batch of one sample is dropped: BatchNorm cannot normalise it.
        """
        order = torch.randperm(n, generator=generator) if generator else torch.arange(n)
        if generator is not None and n > 1 and n % size == 1:
            order = order[:-1]
        return order

    def batches(self, split, size: int, generator: torch.Generator | None
                ) -> Iterator[tuple[Tensor, Tensor]]:
        """Minibatches of ``split`` in ``order(len(split), size, generator)``."""
        order = self.order(len(split), size, generator)
        if isinstance(split, Split):  # one index copy to the device per epoch, then gathers
            for idx in order.to(self.device).split(size):
                yield split.x[idx], split.y[idx]
        else:
            # its own generator: a DataLoader otherwise draws its base seed from the global RNG,
            # which the feedback rules (brsf) and dropout use
            loader = DataLoader(split, batch_sampler=[c.tolist() for c in order.split(size)],
                                generator=torch.Generator())
            for x, y in loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    # ------------------------------------------------------------------ epochs

    def _clip_weights(self, c: float) -> None:
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name.endswith("weight") and p.requires_grad:
                    p.clamp_(-c, c)

    def step(self, x: Tensor, y: Tensor) -> None:
        """One training step; adds the batch's loss and errors to the epoch's sums."""
        out = self.model(x)
        loss = self.loss_fn(out, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.sched["grad_clip"]:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.sched["grad_clip"])
        self.optimizer.step()
        if self.sched["weight_clip"]:
            self._clip_weights(self.sched["weight_clip"])
        self.loss_sum += loss.detach() * len(y)
        if self.classification:
            self.wrong += (out.detach().argmax(1) != y).sum()

    def _graphed_epoch(self, size: int, generator: torch.Generator) -> int:
        """Full batches replay one captured step; the first WARMUP_STEPS of the cell and a short
        last batch run eagerly. The graph holds the LR and batch size as constants, so a change
        of either captures it again."""
        split = self.data.train
        order = self.order(len(split), size, generator).to(self.device)
        key = (size, tuple(group["lr"] for group in self.optimizer.param_groups))
        for idx in order.split(size):
            if len(idx) == size and self.eager_steps >= WARMUP_STEPS:
                if self.captured is None or self.captured.key != key:
                    self.captured = None  # frees the old graph's memory before the new capture
                    self.captured = _CapturedStep(self, key)
                self.captured.replay(idx)
                continue
            side = torch.cuda.Stream(self.device)  # warm-up off the capture's stream (PyTorch docs)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self.step(split.x[idx], split.y[idx])
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.eager_steps += len(idx) == size
        return len(order)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of the protocol; returns its metrics (read from the device once)."""
        start = time.perf_counter()
        lr = S.learning_rate(self.sched, epoch, self.c["lr_scale"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        size = S.batch_size(self.sched, epoch)
        self.model.train()
        self.loss_sum.zero_()
        self.wrong.zero_()
        generator = epoch_generator(self.c["seed"], epoch)
        if self.graphed:
            seen = self._graphed_epoch(size, generator)
        else:
            seen = 0
            for x, y in self.batches(self.data.train, size, generator):
                self.step(x, y)
                seen += len(y)
        if self.sched["bn_ema_batches"]:
            ema = self.batches(self.data.train, size, epoch_generator(self.c["seed"], epoch, 1))
            S.reestimate_bn(self.model, (x for x, _ in itertools.islice(
                ema, self.sched["bn_ema_batches"])), self.sched["bn_ema_alpha"])
        metrics = {"train_loss": self.loss_sum.item() / seen, "lr": lr, "batch_size": size}
        if self.classification:
            metrics["train_error"] = 100.0 * self.wrong.item() / seen
        metrics["val_error"] = self.evaluate()
        for layer, stats in alignment_stats(self.model).items():
            metrics.update({f"{key}/{layer}": value for key, value in stats.items()})
        metrics["epoch_time"] = time.perf_counter() - start
        return metrics

    @torch.no_grad()
    def evaluate(self) -> float:
        """Test-split error in % (classification) or mean squared error (regression)."""
        self.model.eval()
        total = torch.zeros((), device=self.device)
        n = len(self.data.test)
        for x, y in self.batches(self.data.test, EVAL_BATCH, None):
            out = self.model(x)
            if self.classification:
                total += (out.argmax(1) != y).sum()
            else:
                total += nn.functional.mse_loss(out, y, reduction="sum") / out[0].numel()
        value = total.item() / n
        return 100.0 * value if self.classification else value


class _CapturedStep:
    """``Trainer.step`` on a batch gathered by a fixed index tensor, captured as a CUDA graph.

    Parameters, gradients, optimizer state and the epoch's sums are the trainer's own tensors, so a
    replay trains the cell exactly as the eager step would; random draws (brsf, dropout) come from
    PyTorch's graph-safe generator, fresh at every replay.
    """

    def __init__(self, trainer: Trainer, key: tuple):
        self.key = key
        split = trainer.data.train
        self.idx = torch.zeros(key[0], dtype=torch.long, device=trainer.device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            trainer.step(split.x[self.idx], split.y[self.idx])

    def replay(self, idx: Tensor) -> None:
        self.idx.copy_(idx)
        self.graph.replay()


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
