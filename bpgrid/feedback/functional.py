"""Autograd functions whose backward sends the input gradient through a feedback matrix V.

One function per operation. Forward is the ordinary one. Backward returns dE/dx computed with V in
place of W (Liao et al. eq. 2: dE/dx = V·(f'(N)∘dE/dy)) and dE/dW, dE/db exactly as backpropagation.
When ``stats`` is a dict, backward also stores there the angle (degrees) between the V-gradient and
the gradient W would send, at the cost of one extra input-gradient product. An array's layers
(``bpgrid.arrays``) measure these per member: ``members`` K splits a tensor into the members' parts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function

from bpgrid.feedback.rules import sign


def member_rows(t: Tensor, members: int, dim: int = 0) -> Tensor:
    """(members, -1): each member's part of ``t`` as one row, the members lying side by side
    along ``dim`` (an array's (K, ...) weights along 0, its (B, K·C, ...) activations along 1)."""
    return t.unflatten(dim, (members, -1)).movedim(dim, 0).reshape(members, -1)


def angle(a: Tensor, b: Tensor, members: int = 0, dim: int = 0) -> Tensor:
    """Angle in degrees between two tensors taken as flat vectors (0-dim tensor, no host sync);
    with ``members`` K, between each member's parts (a (K,) tensor, see ``member_rows``)."""
    dtype = torch.promote_types(a.dtype, torch.float32)
    a, b = a.detach().to(dtype), b.detach().to(dtype)
    if members:
        a, b = member_rows(a, members, dim), member_rows(b, members, dim)
        cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)
    else:
        a, b = a.flatten(), b.flatten()
        cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30)
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


def weight_alignment(weight: Tensor, feedback: Tensor, members: int = 0) -> dict[str, Tensor]:
    """Angle between W and V (degrees) and the fraction of sign-concordant entries; with
    ``members``, per member of an array's stacked (K, ...) weights."""
    w = weight.detach()
    concordant = (sign(w) == sign(feedback)).float()
    return {
        "weight_angle": angle(w, feedback, members),
        "sign_concordance": (concordant.reshape(members, -1).mean(1) if members
                             else concordant.mean()),
    }


class _LinearFB(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, feedback, stats):
        ctx.save_for_backward(x, weight, feedback)
        ctx.has_bias = bias is not None
        ctx.stats = stats
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, feedback = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out.matmul(feedback)
            if ctx.stats is not None:
                ctx.stats["grad_angle"] = angle(grad_x, grad_out.matmul(weight))
        if ctx.needs_input_grad[1]:
            g2 = grad_out.reshape(-1, grad_out.shape[-1])
            grad_w = g2.t().mm(x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)
        return grad_x, grad_w, grad_b, None, None


def linear(x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor,
           stats: dict | None = None) -> Tensor:
    """y = x Wᵀ + b, with dE/dx = (dE/dy) V."""
    return _LinearFB.apply(x, weight, bias, feedback, stats)


class _ConvFB(Function):
    """1-, 2- or 3-D convolution with any groups; zero padding given as numbers."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, stats, stride, padding, dilation, groups, members):
        ctx.save_for_backward(x, weight, feedback)
        ctx.conf = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        ctx.stats, ctx.members = stats, members
        return torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, False,
                                          [0] * len(stride), groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, feedback = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        bias_sizes = [weight.shape[0]] if ctx.has_bias else None
        no_output_padding = [0] * len(stride)
        # aten's convolution_backward: the input gradient uses the weight argument (here V), the
        # weight gradient uses only its shape, so one call gives both exactly.
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out, x, feedback, bias_sizes, stride, padding, dilation,
            False, no_output_padding, groups, [need_x, need_w, bool(ctx.has_bias and need_b)],
        )
        if need_x and ctx.stats is not None:
            true_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, stride, padding, dilation,
                False, no_output_padding, groups, [True, False, False],
            )[0]
            ctx.stats["grad_angle"] = angle(grad_x, true_x, ctx.members, dim=1)
        return grad_x, grad_w, grad_b, None, None, None, None, None, None, None


def conv(x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor, stride, padding,
         dilation, groups: int = 1, stats: dict | None = None, members: int = 0) -> Tensor:
    """Convolution (1-, 2- or 3-D by the weight's shape, any groups, numeric zero padding) whose
    input gradient is the transposed convolution with V. ``members`` K: an array's members as
    groups (their channels side by side), so the gradient angle is measured per member."""
    return _ConvFB.apply(x, weight, bias, feedback, stats, tuple(stride), tuple(padding),
                         tuple(dilation), groups, members)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor,
           stride=(1, 1), padding=(0, 0), dilation=(1, 1), stats: dict | None = None,
           groups: int = 1) -> Tensor:
    """2-D convolution whose input gradient is the transposed convolution with V."""
    return conv(x, weight, bias, feedback, stride, padding, dilation, groups, stats)


def untied_output_size(size: tuple[int, int], kernel, stride, padding) -> tuple[int, int]:
    """Output height and width of a (tied or untied) convolution."""
    return tuple(
        (size[i] + 2 * padding[i] - kernel[i]) // stride[i] + 1 for i in range(2)
    )


class _UntiedConv2dFB(Function):
    """Locally connected conv: weight (L, C_out, C_in·kh·kw), one kernel per output position."""

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, stats, kernel, stride, padding):
        n, _, h, w = x.shape
        ho, wo = untied_output_size((h, w), kernel, stride, padding)
        cols = F.unfold(x, kernel, padding=padding, stride=stride).permute(2, 0, 1)  # L,N,K
        out = torch.bmm(cols, weight.transpose(1, 2))  # L,N,C_out
        if bias is not None:
            out = out + bias.unsqueeze(1)
        ctx.save_for_backward(cols, weight, feedback)
        ctx.conf = ((h, w), kernel, stride, padding)
        ctx.has_bias = bias is not None
        ctx.stats = stats
        return out.permute(1, 2, 0).reshape(n, -1, ho, wo)

    @staticmethod
    def backward(ctx, grad_out):
        cols, weight, feedback = ctx.saved_tensors
        size, kernel, stride, padding = ctx.conf
        n, c_out = grad_out.shape[:2]
        g = grad_out.reshape(n, c_out, -1).permute(2, 0, 1)  # L,N,C_out
        grad_x = grad_w = grad_b = None

        def fold(gcols):
            return F.fold(gcols.permute(1, 2, 0), size, kernel, padding=padding, stride=stride)

        if ctx.needs_input_grad[0]:
            grad_x = fold(torch.bmm(g, feedback))
            if ctx.stats is not None:
                ctx.stats["grad_angle"] = angle(grad_x, fold(torch.bmm(g, weight)))
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(g.transpose(1, 2), cols)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(1)
        return grad_x, grad_w, grad_b, None, None, None, None, None


def untied_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor,
                  kernel_size, stride=(1, 1), padding=(0, 0),
                  stats: dict | None = None) -> Tensor:
    """Untied (locally connected) convolution by unfold + batched matmul; no dense matrix."""
    return _UntiedConv2dFB.apply(x, weight, bias, feedback, stats, tuple(kernel_size),
                                 tuple(stride), tuple(padding))

