"""Models: Liao et al.'s Table 1 nets, the reference report's nets and small nets."""

from bpgrid.models import liao, report_nets, small  # noqa: F401  (register the architectures)
from bpgrid.models.build import FREEZE, build_model, freeze_layers, load_first_layer
from bpgrid.models.net import ACTIVATIONS, NORMS, FeedbackNet, Pool2d
from bpgrid.models.registry import MODELS, ModelDef, get_model, model_input_shape, register
from bpgrid.models.spec import FC, Conv, Pool

__all__ = [
    "build_model", "freeze_layers", "load_first_layer", "FREEZE", "NORMS", "ACTIVATIONS",
    "MODELS", "ModelDef", "register", "get_model", "model_input_shape",
    "FeedbackNet", "Pool2d", "Conv", "Pool", "FC",
]
