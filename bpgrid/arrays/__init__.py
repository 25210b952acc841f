"""Fused cell arrays: cells that differ only in numbers train together as one batched net.

``net`` (ArrayNet: the members' FeedbackNets stacked), ``layers`` and ``functional`` (weight
layers with each member's rule), ``modules`` (layouts, BatchNorm, dropout), ``direct`` (DFA),
``optim`` (optimizers with per-member numbers), ``structure`` (which cells fit one array).
The trainer (``bpgrid.trainer``) trains an array; a single cell is an array of one.
"""

from bpgrid.arrays.net import ArrayNet
from bpgrid.arrays.optim import ArrayOptimizer, build_array_optimizer
from bpgrid.arrays.structure import pack, structure, structure_key

__all__ = ["ArrayNet", "ArrayOptimizer", "build_array_optimizer", "pack", "structure",
           "structure_key"]
