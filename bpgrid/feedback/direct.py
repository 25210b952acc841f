"""Direct feedback alignment on a whole network (Nøkland 2016), installed with hooks.

A hook at the network's output takes the error e = dLoss/d(output), the gradient at the loss
input, as the backward pass starts there. A hook at the input of each DFA layer passes its input
on unchanged and, in the backward pass, replaces the gradient arriving there (Wᵀδ) by B e. The
layers below then compute their weight gradients through f', BatchNorm and pooling unchanged, so
δ_l = (B e) ∘ f'(a_l) and a training step that calls ``loss.backward()`` on the output just works,
with any optimizer. This is where Nøkland's reference code puts its ErrorFeedback modules: after
each hidden block (nonlinearity, dropout, pooling), before the next weight layer.

B of each layer is its ``direct_feedback`` buffer, (output size) x (input size per sample), so it
is saved in ``state_dict()`` and moves with ``.to()``. The only Python-side state is the error of
the forward pass in flight, held by the autograd nodes of that pass.

With ``alignment`` on a layer, its ``alignment_stats`` gain ``grad_angle`` (B e against the Wᵀδ
it replaces) and ``update_angle`` (the layer's DFA weight gradient against backpropagation's for
the same batch). The second costs two extra backward passes, run from the output hook: one with
the input hooks passing gradients through (backpropagation), one as DFA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn
from torch.autograd import Function

from bpgrid.feedback.functional import angle
from bpgrid.feedback.trace import trace

ATTRIBUTE = "network_feedback"  # the DirectFeedback installed on a root module


class _Pass:
    """One forward pass's error e (set when the backward reaches the output) and whether the
    backward now running is the backpropagation pass of the alignment statistics."""

    def __init__(self):
        self.error: Tensor | None = None
        self.backprop = False


class _TakeError(Function):
    """Identity on the network's output; its backward, the first to run, keeps e with the
    ``lead`` leading dimensions (the batch; members and batch in an array) and the rest flat."""

    @staticmethod
    def forward(ctx, y, run, owner, lead=1):
        ctx.run, ctx.owner, ctx.lead = run, owner, lead
        if owner.compared:
            ctx.save_for_backward(y)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        run, owner = ctx.run, ctx.owner
        run.error = grad.detach().flatten(ctx.lead)
        if owner.compared:
            (y,) = ctx.saved_tensors
            owner.update_angles(run, y, grad)
        return grad, None, None, None


class _SendError(Function):
    """Identity on a layer's input; its backward returns the owner's ``direct_gradient`` (B e)
    in place of the gradient arriving, except in the backpropagation pass."""

    @staticmethod
    def forward(ctx, x, run, owner, name):
        ctx.run, ctx.owner, ctx.name = run, owner, name
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        if ctx.run.backprop:
            return grad, None, None, None
        return ctx.owner.direct_gradient(ctx.run, ctx.name, grad), None, None, None


def weight_gradients(run: _Pass, y: Tensor, grad: Tensor, weights: Sequence[Tensor]):
    """The DFA and the backpropagation gradients of ``weights`` for the output gradient ``grad``,
    from two backward passes that keep the graph for the real one."""
    run.backprop = True
    try:
        bp = torch.autograd.grad(y, weights, grad, retain_graph=True, allow_unused=True)
    finally:
        run.backprop = False
    dfa = torch.autograd.grad(y, weights, grad, retain_graph=True, allow_unused=True)
    return dfa, bp


class DirectFeedback:
    """DFA installed on ``root`` for its weight layers ``names`` (see the module docstring).

    ``example_input`` is one batch (at least 2 samples if the model has BatchNorm): one forward
    pass of it, which leaves the model as it was, gives each layer's input size and the output
    size. Layers whose input needs no gradient (the network's input) get no B.
    """

    def __init__(self, root: nn.Module, rule, names: Sequence[str],
                 example_input: Tensor | tuple):
        if hasattr(root, ATTRIBUTE):
            raise ValueError("this model already has network feedback installed")
        layers = {name: root.get_submodule(name) for name in names}
        seen = trace(root, layers, example_input)
        if seen.output_shape is None or not seen.output_shape or \
                seen.output_shape[0] != seen.batch:
            raise ValueError(f"dfa needs a model whose output is one tensor with the batch first "
                             f"(batch {seen.batch}), got output shape {seen.output_shape}")
        self.output_size = math.prod(seen.output_shape[1:])
        self.layers = layers
        self.senders: list[str] = []
        for name, layer in layers.items():
            call = seen.calls.get(name)
            if call is None:
                raise ValueError(f"dfa: layer {name} is not called in the forward pass")
            if call.input_shape[0] != seen.batch:
                raise ValueError(f"dfa: {name}'s input has shape {call.input_shape}, whose first "
                                 f"dimension is not the batch ({seen.batch}); DFA needs "
                                 "batch-first tensors")
            if not call.input_requires_grad:
                continue
            size = math.prod(call.input_shape[1:])
            layer.register_buffer("direct_feedback",
                                  rule.direct_matrix(self.output_size, size, layer.weight))
            layer.register_forward_pre_hook(partial(self._send, name))
            self.senders.append(name)
        self.compared = [name for name, layer in layers.items() if layer.alignment]
        self.running: _Pass | None = None  # the forward pass in flight
        root.register_forward_pre_hook(self._open)
        root.register_forward_hook(self._close)
        setattr(root, ATTRIBUTE, self)

    def __repr__(self) -> str:
        return f"DirectFeedback(output_size={self.output_size}, senders={self.senders})"

    def summary(self) -> str:
        return (f"dfa: the output error ({self.output_size} values a sample) is sent to the "
                f"inputs of {len(self.senders)} layers: {', '.join(self.senders) or 'none'}")

    # ------------------------------------------------------------------ hooks

    def _open(self, root, args):
        self.running = _Pass() if torch.is_grad_enabled() else None

    def _close(self, root, args, output):
        run, self.running = self.running, None
        if run is None or not isinstance(output, Tensor) or not output.requires_grad:
            return None
        return _TakeError.apply(output, run, self)

    def _send(self, name, layer, args):
        run = self.running
        if run is None or not args or not isinstance(args[0], Tensor) or \
                not args[0].requires_grad:
            return None
        return (_SendError.apply(args[0], run, self, name), *args[1:])

    def direct_gradient(self, run: _Pass, name: str, grad: Tensor) -> Tensor:
        """B e, the gradient that leaves layer ``name``'s input in place of the arriving grad."""
        if run.error is None:
            raise RuntimeError(f"dfa: the gradient reached {name}'s input without passing the "
                               "network's output; DFA needs a loss computed from the output")
        layer = self.layers[name]
        direct = run.error.mm(layer.direct_feedback)
        if direct.numel() != grad.numel():
            raise RuntimeError(f"dfa: {name}'s input has shape {tuple(grad.shape)}, but its B "
                               f"was sized for {layer.direct_feedback.shape[1]} values per sample")
        direct = direct.view(grad.shape)
        if layer.alignment:
            layer.alignment_stats["grad_angle"] = angle(direct, grad)
        return direct

    # ------------------------------------------------------------------ alignment statistics

    def update_angles(self, run: _Pass, y: Tensor, grad: Tensor) -> None:
        """Each compared layer's angle between its DFA and its backpropagation weight gradient
        for this output error (``weight_gradients``)."""
        layers = [self.layers[n] for n in self.compared if self.layers[n].weight.requires_grad]
        if not layers:
            return
        dfa, bp = weight_gradients(run, y, grad, [layer.weight for layer in layers])
        for layer, a, b in zip(layers, dfa, bp, strict=True):
            if a is not None and b is not None:
                layer.alignment_stats["update_angle"] = angle(a, b)
