"""A cell's training step, run eagerly or replayed as a CUDA graph.

Liao et al.'s nets at batch 100 run ~150 small kernels a step, and launching them from Python
takes several times longer than running them. So on a GPU, with the training split on the device,
the step is captured once as a CUDA graph and replayed for every full batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bpgrid.data import Split
from bpgrid.parts import CellParts

WARMUP_STEPS = 3  # eager steps before the first capture: optimizer state, cuDNN/cuBLAS set-up


class Step:
    """One training step: forward, loss, backward, gradient clipping, update, weight clipping.

    Adds the batch's summed loss and its error count to ``loss_sum`` and ``wrong``, tensors on the
    device (a captured step adds to these very tensors), so nothing waits for the device.
    """

    def __init__(self, parts: CellParts, grad_clip: float | None, weight_clip: float | None):
        self.parts, self.grad_clip, self.weight_clip = parts, grad_clip, weight_clip
        self.loss_sum = torch.zeros((), device=parts.device)
        self.wrong = torch.zeros((), device=parts.device, dtype=torch.long)

    def __call__(self, x: Tensor, y: Tensor) -> None:
        model, optimizer = self.parts.model, self.parts.optimizer
        out = model(x)
        loss = self.parts.loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
        optimizer.step()
        if self.weight_clip:
            clip_weights(model, self.weight_clip)
        self.loss_sum += loss.detach() * len(y)
        if self.parts.classification:
            self.wrong += (out.detach().argmax(1) != y).sum()


@torch.no_grad()
def clip_weights(model: nn.Module, c: float) -> None:
    """The report's weight clipping: trainable weights (not biases) into [-c, c]."""
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.requires_grad:
            p.clamp_(-c, c)


def graphable(parts: CellParts) -> bool:
    """A CUDA graph needs a GPU and the training split held on it as tensors."""
    return parts.device.type == "cuda" and isinstance(parts.data.train, Split)


class GraphedStep:
    """``step`` on full batches of the training split replays one captured CUDA graph.

    The cell's first WARMUP_STEPS full batches and a short last batch run eagerly, on a side
    stream (PyTorch's docs). The graph holds the LR and batch size as constants, so a change of
    either captures it again.
    """

    def __init__(self, step: Step):
        self.step, self.split = step, step.parts.data.train
        self.eager_steps = 0  # full-size eager steps so far
        self.captured: _CapturedStep | None = None

    def run(self, order: Tensor, size: int) -> None:
        """Steps on the batches of ``size`` samples of ``order``, indices on the device."""
        device = self.step.parts.device
        key = (size, tuple(group["lr"] for group in self.step.parts.optimizer.param_groups))
        for idx in order.split(size):
            if len(idx) == size and self.eager_steps >= WARMUP_STEPS:
                if self.captured is None or self.captured.key != key:
                    self.captured = None  # frees the old graph's memory before the new capture
                    self.captured = _CapturedStep(self, key)
                self.captured.replay(idx)
                continue
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                self.step(self.split.x[idx], self.split.y[idx])
            torch.cuda.current_stream(device).wait_stream(side)
            self.eager_steps += len(idx) == size


class _CapturedStep:
    """The step on a batch gathered by a fixed index tensor, captured as a CUDA graph.

    Parameters, gradients, optimizer state and the epoch's sums are the step's own tensors, so a
    replay trains the cell exactly as the eager step would; random draws (brsf, dropout) come from
    PyTorch's graph-safe generator, fresh at every replay.
    """

    def __init__(self, graphed: GraphedStep, key: tuple):
        self.key = key
        self.idx = torch.zeros(key[0], dtype=torch.long, device=graphed.step.parts.device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            graphed.step(graphed.split.x[self.idx], graphed.split.y[self.idx])

    def replay(self, idx: Tensor) -> None:
        self.idx.copy_(idx)
        self.graph.replay()
