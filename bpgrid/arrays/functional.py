"""Autograd functions of an array's FC and untied conv layers: member k's input gradient goes
through its own V (Liao et al. eq. 2), its weight gradient is backpropagation's.

Weights carry a leading member dimension K. An FC layer's inputs are (K, B, in) and its product is
one batched matmul over the members. An untied conv's inputs are (B, K·C, H, W), the members'
channels side by side, and its product is one batched matmul over members x output positions.
(Tied convolutions are grouped convolutions, ``bpgrid.feedback.functional.conv``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function

from bpgrid.feedback.functional import angle, untied_output_size


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """y_k = x_k W_kᵀ + b_k for every member k: (K, B, in) -> (K, B, out), PyTorch's autograd."""
    wt = weight.transpose(1, 2)
    return torch.bmm(x, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), x, wt)


class _LinearFB(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, feedback, stats):
        ctx.save_for_backward(x, weight, feedback)
        ctx.has_bias, ctx.stats = bias is not None, stats
        return linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, feedback = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(grad_out, feedback)
            if ctx.stats is not None:
                ctx.stats["grad_angle"] = angle(grad_x, torch.bmm(grad_out, weight), len(weight))
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(grad_out.transpose(1, 2), x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(1)
        return grad_x, grad_w, grad_b, None, None


def feedback_linear(x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor,
                    stats: dict | None = None) -> Tensor:
    """``linear`` whose input gradient is dE/dx_k = (dE/dy_k) V_k; with ``stats``, the angle of
    each member's input gradient to backpropagation's, a (K,) tensor."""
    return _LinearFB.apply(x, weight, bias, feedback, stats)


class _UntiedFB(Function):
    """Members' locally connected convs: weight (K, L, C_out, C_in·kh·kw), bias (K, L, C_out)."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, stats, kernel, stride, padding):
        members, positions, c_out, k = weight.shape
        n, _, h, w = x.shape
        ho, wo = untied_output_size((h, w), kernel, stride, padding)
        cols = F.unfold(x, kernel, padding=padding, stride=stride)  # N, K·C_in·kh·kw, L
        cols = cols.view(n, members, k, positions).permute(1, 3, 0, 2)
        cols = cols.reshape(members * positions, n, k)  # (K·L, N, C_in·kh·kw)
        out = torch.bmm(cols, weight.reshape(members * positions, c_out, k).transpose(1, 2))
        if bias is not None:
            out = out + bias.reshape(members * positions, 1, c_out)
        ctx.save_for_backward(cols, weight, feedback)
        ctx.conf = ((h, w), kernel, stride, padding)
        ctx.has_bias, ctx.stats = bias is not None, stats
        out = out.view(members, positions, n, c_out).permute(2, 0, 3, 1)
        return out.reshape(n, members * c_out, ho, wo)

    @staticmethod
    def backward(ctx, grad_out):
        cols, weight, feedback = ctx.saved_tensors
        size, kernel, stride, padding = ctx.conf
        members, positions, c_out, k = weight.shape
        n = grad_out.shape[0]
        g = grad_out.reshape(n, members, c_out, positions).permute(1, 3, 0, 2)
        g = g.reshape(members * positions, n, c_out)
        grad_x = grad_w = grad_b = None

        def fold(gcols):  # (K·L, N, C_in·kh·kw) -> (N, K·C_in, H, W)
            gcols = gcols.view(members, positions, n, k).permute(2, 0, 3, 1)
            return F.fold(gcols.reshape(n, members * k, positions), size, kernel,
                          padding=padding, stride=stride)

        def through(matrix):
            return fold(torch.bmm(g, matrix.reshape(members * positions, c_out, k)))

        if ctx.needs_input_grad[0]:
            grad_x = through(feedback)
            if ctx.stats is not None:
                ctx.stats["grad_angle"] = angle(grad_x, through(weight), members, dim=1)
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(g.transpose(1, 2), cols).view(weight.shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(1).view(members, positions, c_out)
        return grad_x, grad_w, grad_b, None, None, None, None, None


def untied_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor,
                  kernel_size, stride, padding, stats: dict | None = None) -> Tensor:
    """The members' untied convs on (B, K·C_in, H, W), by unfold + one batched matmul; member k's
    input gradient goes through V_k (``feedback``, shaped as ``weight``)."""
    return _UntiedFB.apply(x, weight, bias, feedback, stats, tuple(kernel_size), tuple(stride),
                           tuple(padding))
