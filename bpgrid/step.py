"""An array's training step, run eagerly or replayed as a CUDA graph.

Liao et al.'s nets at batch 100 run ~150 small kernels a step, and launching them from Python
takes several times longer than running them. So on a GPU, with the training split on the device,
the step is captured once as a CUDA graph and replayed for every full batch.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from bpgrid.data import Split
from bpgrid.losses import member_losses
from bpgrid.parts import ArrayParts

WARMUP_STEPS = 3  # eager steps before the first capture: optimizer state, cuDNN/cuBLAS set-up


class Step:
    """One training step of every member: forward, loss, backward, gradient clipping, update,
    weight clipping, each member's on its own batch and with its own numbers.

    The backward pass runs on the sum of the members' mean losses, so each member's gradients
    are its own. Adds each member's summed loss and error count to ``loss_sum`` and ``wrong``,
    (K,) tensors on the device (a captured step adds to these very tensors), so nothing waits
    for the device.
    """

    def __init__(self, parts: ArrayParts, grad_clip: float | None, weight_clip: float | None):
        self.parts, self.grad_clip, self.weight_clip = parts, grad_clip, weight_clip
        members, device = len(parts.members), parts.device
        self.loss_sum = torch.zeros(members, device=device, dtype=torch.float64)
        self.wrong = torch.zeros(members, device=device, dtype=torch.long)
        self.clipped = [(name, p) for name, p in parts.net.named_parameters()
                        if name.endswith("weight") and p.requires_grad]

    def __call__(self, x: Tensor, y: Tensor) -> None:
        """``x``, ``y``: (K, B, ...) batches, member k's in row k."""
        net, optimizer = self.parts.net, self.parts.optimizer
        out = net(x)
        losses = member_losses(self.parts.loss_fn, out, y)
        optimizer.zero_grad()
        losses.sum().backward()
        if self.grad_clip:
            clip_grad_norms(optimizer.params, self.grad_clip)
        optimizer.step()
        if self.weight_clip:
            with torch.no_grad():
                for _, p in self.clipped:
                    p.clamp_(-self.weight_clip, self.weight_clip)
        self.loss_sum += losses.detach() * y.shape[1]
        if self.parts.classification:
            self.wrong += (out.detach().argmax(-1) != y).sum(1)


@torch.no_grad()
def clip_grad_norms(params: list[Tensor], max_norm: float) -> None:
    """torch.nn.utils.clip_grad_norm_ per member: each member's gradients (parameters with a
    leading member dimension) scaled to a total 2-norm of at most ``max_norm``.

    Each member's squared norm is a batched dot product and the parameters' add up one by one, so
    a member's number does not depend on how many members the array has (a reduction over all
    members at once may sum in another order)."""
    grads = [p.grad for p in params]
    members = grads[0].shape[0]
    rows = [g.reshape(members, 1, -1) for g in grads]
    squares = [torch.bmm(r, r.transpose(1, 2)).view(members) for r in rows]
    total = functools.reduce(torch.add, squares).sqrt()
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, [scale.view(-1, *[1] * (g.dim() - 1)) for g in grads])


def graphable(parts: ArrayParts) -> bool:
    """A CUDA graph needs a GPU and the training split held on it as tensors."""
    return parts.device.type == "cuda" and isinstance(parts.data.train, Split)


class GraphedStep:
    """``step`` on full batches of the training split replays one captured CUDA graph.

    The array's first WARMUP_STEPS full batches and a short last batch run eagerly, on a side
    stream (PyTorch's docs). The graph holds the batch size as a constant, so a change of it
    captures it again; the members' learning rates are read from a device tensor, so a new LR
    needs no capture.
    """

    def __init__(self, step: Step):
        self.step, self.split = step, step.parts.data.train
        self.eager_steps = 0  # full-size eager steps so far
        self.captures = 0
        self.captured: _CapturedStep | None = None

    def run(self, orders: Tensor, size: int) -> None:
        """Steps on the batches of ``size`` samples of ``orders`` ((K, n) indices on the
        device)."""
        device = self.step.parts.device
        for idx in orders.split(size, dim=1):
            if idx.shape[1] == size and self.eager_steps >= WARMUP_STEPS:
                if self.captured is None or self.captured.size != size:
                    self.captured = None  # frees the old graph's memory before the new capture
                    self.captured = _CapturedStep(self, idx.shape)
                    self.captures += 1
                self.captured.replay(idx)
                continue
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                self.step(self.split.x[idx], self.split.y[idx])
            torch.cuda.current_stream(device).wait_stream(side)
            self.eager_steps += idx.shape[1] == size


class _CapturedStep:
    """The step on batches gathered by a fixed (K, B) index tensor, captured as a CUDA graph.

    Parameters, gradients, optimizer state and the epoch's sums are the step's own tensors, so a
    replay trains the array exactly as the eager step would. The members' generators are
    registered with the graph, so their draws (brsf, dropout, the weight mirror) are fresh at
    every replay and advance each generator as eager steps would.
    """

    def __init__(self, graphed: GraphedStep, shape: torch.Size):
        parts = graphed.step.parts
        self.size = shape[1]
        self.idx = torch.zeros(shape, dtype=torch.long, device=parts.device)
        self.graph = torch.cuda.CUDAGraph()
        for member in parts.members:
            self.graph.register_generator_state(member.generator)
        with torch.cuda.graph(self.graph):
            graphed.step(graphed.split.x[self.idx], graphed.split.y[self.idx])

    def replay(self, idx: Tensor) -> None:
        self.idx.copy_(idx)
        self.graph.replay()
