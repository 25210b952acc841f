"""build_model: a registered architecture with feedback rule, norm, nonlinearity and controls."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from bpgrid.feedback import FeedbackRule, make_rule
from bpgrid.models.net import FeedbackNet, check_choice
from bpgrid.models.registry import get_model

FREEZE = ("none", "bottom", "top")


def build_model(name: str, *, input_shape: Sequence[int], num_classes: int,
                feedback: str | FeedbackRule = "bp",
                feedback_layers: int | str | Collection[str] = "all",
                feedback_options: Mapping | None = None, norm: str = "none",
                activation: str = "relu", dropout: float = 0.0, freeze: str = "none",
                pretrained_first_layer: str | Path | None = None, alignment: bool = False,
                **model_options) -> FeedbackNet:
    """The model ``name`` of ``MODELS`` for inputs of ``input_shape`` and ``num_classes`` outputs.

    ``feedback`` (a rule name with ``feedback_options``, or a rule) is used by the weight layers
    ``feedback_layers``: "all", an int k (the last k: the report's R1/R2/R4 nets), or names such
    as ``["fc1", "fc2"]``; the others use bp. ``norm``: none | bn (BatchNorm without affine, the
    paper's BN) | bn_affine, after every conv/FC but the last, before the nonlinearity (relu |
    tanh). ``dropout`` follows every hidden FC. ``freeze`` is Experiment C2's control (see
    ``freeze_layers``); ``pretrained_first_layer`` loads and freezes the first layer (see
    ``load_first_layer``). ``model_options`` are the model's own, e.g. ``hidden`` for ``mlp``.
    Unknown names and inputs the net does not fit raise ValueError.
    """
    model = get_model(name)
    check_choice("freeze", freeze, FREEZE)
    layers = model.build_layers(num_classes, **model_options)
    rule = make_rule(feedback, **dict(feedback_options or {}))
    net = FeedbackNet(layers, input_shape, rule=rule, feedback_layers=feedback_layers,
                      alignment=alignment, norm=norm, activation=activation, dropout=dropout,
                      arch=name)
    if pretrained_first_layer is not None:
        load_first_layer(net, pretrained_first_layer)
    freeze_layers(net, freeze)
    return net


def freeze_layers(net: FeedbackNet, freeze: str) -> None:
    """Experiment C2 (Liao et al. §5, Table 4): clamp part of the net at its random init.

    ``bottom``: the last layer is frozen, all learning happens in the layers before it.
    ``top``: every layer before the last (with its norm parameters) is frozen, only the last
    layer learns. This follows the C2 text and its observation (i) that "Top" errors barely differ
    between algorithms; Table 4's caption repeats "all learning happens in the last layer" for
    Bottom, which we read as a typo. BatchNorm statistics of frozen layers still follow the batch.
    """
    check_choice("freeze", freeze, FREEZE)
    last = net.weight_layers[-1]
    if freeze == "none":
        return
    if freeze == "bottom":
        frozen = [net.get_submodule(last)]
    else:
        frozen = [m for _, m in itertools.takewhile(lambda item: item[0] != last,
                                                    net.named_children())]
    for module in frozen:
        for param in module.parameters():
            param.requires_grad_(False)


def _first_layer_tensors(checkpoint, first: str, path: Path) -> dict[str, Tensor]:
    if isinstance(checkpoint, Mapping):
        if f"{first}.weight" in checkpoint:
            return {k: checkpoint[f"{first}.{k}"] for k in ("weight", "bias")
                    if f"{first}.{k}" in checkpoint}
        if "weight" in checkpoint:
            return {k: checkpoint[k] for k in ("weight", "bias") if k in checkpoint}
        keys = sorted(checkpoint)[:8]
    else:
        keys = type(checkpoint).__name__
    raise ValueError(f"checkpoint {path} holds neither a state_dict with {first}.weight nor a "
                     f"dict with weight/bias (found {keys})")


def load_first_layer(net: FeedbackNet, path: str | Path) -> None:
    """Copy the first layer from a checkpoint and freeze it (the report's §6 "FixConv").

    The checkpoint is a ``torch.save``d state_dict of a net with the same first layer name
    (e.g. ``report_pg``'s ``conv1.weight``) or a dict with that layer's ``weight``/``bias``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_first_layer: no checkpoint file at {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    first = net.weight_layers[0]
    layer = net.get_submodule(first)
    tensors = _first_layer_tensors(checkpoint, first, path)
    targets = {"weight": layer.weight, "bias": layer.bias}
    for key, param in targets.items():
        if param is None:
            continue
        if key not in tensors:
            raise ValueError(f"checkpoint {path} has no {key} for {first}")
        if tuple(tensors[key].shape) != tuple(param.shape):
            raise ValueError(f"checkpoint {path}: {first}.{key} has shape "
                             f"{tuple(tensors[key].shape)}, but {net.arch}'s {first} for input "
                             f"shape {net.input_shape} has {tuple(param.shape)}")
    with torch.no_grad():
        for key, param in targets.items():
            if param is not None:
                param.copy_(tensors[key])
    layer.reset_feedback()  # state such as kp's offset depends on the weight
    for param in layer.parameters():
        param.requires_grad_(False)
