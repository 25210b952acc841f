"""Direct feedback alignment in an array: member k's output error e_k reaches the input of each
of its DFA layers as B_k e_k (Nøkland 2016), installed with hooks as on a plain net
(``bpgrid.feedback.direct``, whose docstring describes the mechanism).

The array's output is (K, B, out), so e is (K, B, out) and one batched matmul gives every member's
B_k e_k. At a layer where only some members use DFA, the others keep the gradient that arrives.
Each B_k is member k's ``direct_feedback`` buffer, stacked in the layer's (K, out, in) buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn

from bpgrid.arrays.modules import grouped
from bpgrid.feedback.direct import DirectFeedback, _Pass, _SendError, _TakeError, weight_gradients
from bpgrid.feedback.functional import angle


class ArrayDirectFeedback:
    """DFA on ``net`` (an ArrayNet) for the members whose plain nets have it (``plains``: each
    member's DirectFeedback or None); ``input_grouped``: whether a layer's input is grouped."""

    def __init__(self, net: nn.Module, plains: Sequence[DirectFeedback | None],
                 input_grouped: dict[str, bool]):
        self.members = len(plains)
        self.layers: dict[str, nn.Module] = {}
        self.grouped = input_grouped
        self.mixed: dict[str, bool] = {}  # only some members send at the layer
        for name in net.weight_layers:
            sends = [plain is not None and name in plain.senders for plain in plains]
            if any(sends):
                layer = self.layers[name] = net.get_submodule(name)
                layer.register_buffer("direct_senders", torch.tensor(sends), persistent=False)
                layer.register_forward_pre_hook(partial(self._send, name))
                self.mixed[name] = not all(sends)
        self.compared = [name for name in net.weight_layers
                         if any(plain is not None and name in plain.compared for plain in plains)]
        self.net = net
        self.running: _Pass | None = None
        net.register_forward_pre_hook(self._open)
        net.register_forward_hook(self._close)

    def _open(self, net, args):
        self.running = _Pass() if torch.is_grad_enabled() else None

    def _close(self, net, args, output):
        run, self.running = self.running, None
        if run is None or not output.requires_grad:
            return None
        return _TakeError.apply(output, run, self, 2)  # e: (K, B, out)

    def _send(self, name, layer, args):
        run = self.running
        if run is None or not args[0].requires_grad:
            return None
        return (_SendError.apply(args[0], run, self, name), *args[1:])

    def direct_gradient(self, run: _Pass, name: str, grad: Tensor) -> Tensor:
        """The gradient that leaves layer ``name``'s input: B_k e_k for its DFA members, the
        arriving ``grad`` for the others."""
        if run.error is None:
            raise RuntimeError(f"dfa: the gradient reached {name}'s input without passing the "
                               "network's output; DFA needs a loss computed from the output")
        layer, members = self.layers[name], self.members
        direct = torch.bmm(run.error, layer.direct_feedback)  # (K, B, in)
        if direct.numel() != grad.numel():
            raise RuntimeError(f"dfa: {name}'s input has shape {tuple(grad.shape)}, but its B "
                               f"was sized for {layer.direct_feedback.shape[2]} values per sample")
        dim = 1 if self.grouped[name] else 0
        if dim:  # (K, B, C·H·W) -> (B, K·C, H, W)
            direct = grouped(direct.view(members, grad.shape[0], -1, *grad.shape[2:]))
        else:
            direct = direct.view(grad.shape)
        if self.mixed[name]:  # (a host flag: a captured CUDA graph cannot read the device)
            senders = layer.direct_senders
            if dim:
                senders = senders.repeat_interleave(grad.shape[1] // members)
            shape = [1] * grad.dim()
            shape[dim] = -1
            direct = torch.where(senders.view(shape), direct, grad)
        if any(layer.alignment):
            layer.direct_stats["grad_angle"] = angle(direct, grad, members, dim)
        return direct

    def update_angles(self, run: _Pass, y: Tensor, grad: Tensor) -> None:
        """Per compared layer and member, the angle between the DFA and the backpropagation
        weight gradient for this output error (as ``DirectFeedback.update_angles``)."""
        layers = [self.net.get_submodule(n) for n in self.compared]
        layers = [layer for layer in layers if layer.weight.requires_grad]
        if not layers:
            return
        dfa, bp = weight_gradients(run, y, grad, [layer.weight for layer in layers])
        for layer, a, b in zip(layers, dfa, bp, strict=True):
            if a is not None and b is not None:
                layer.direct_stats["update_angle"] = angle(a, b, self.members)
