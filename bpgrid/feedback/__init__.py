"""Asymmetric feedback: rules (V from W), layers that use them, and a model converter."""

from bpgrid.feedback.convert import alignment_stats, convert, convertible_layers
from bpgrid.feedback.layers import FeedbackConv2d, FeedbackLinear, UntiedConv2d
from bpgrid.feedback.rules import RULES, FeedbackRule, make_rule, register

__all__ = [
    "RULES", "FeedbackRule", "make_rule", "register",
    "FeedbackLinear", "FeedbackConv2d", "UntiedConv2d",
    "convert", "convertible_layers", "alignment_stats",
]
