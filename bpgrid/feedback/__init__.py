"""Asymmetric feedback: rules (V from W), layers that use them, and a model converter."""

from bpgrid.feedback.convert import (
    Conversion,
    UnconvertedWarning,
    alignment_stats,
    convert,
    convertible_layers,
    plan,
)
from bpgrid.feedback.direct import DirectFeedback
from bpgrid.feedback.layers import (
    FeedbackConv1d,
    FeedbackConv2d,
    FeedbackConv3d,
    FeedbackLinear,
    UntiedConv2d,
)
from bpgrid.feedback.rules import RULES, FeedbackRule, make_rule, register, sign

__all__ = [
    "RULES", "FeedbackRule", "make_rule", "register", "sign",
    "FeedbackLinear", "FeedbackConv1d", "FeedbackConv2d", "FeedbackConv3d", "UntiedConv2d",
    "DirectFeedback", "convert", "plan", "Conversion", "UnconvertedWarning",
    "convertible_layers", "alignment_stats",
]
