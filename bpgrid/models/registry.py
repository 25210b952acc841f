"""The model registry and the fixed input shapes of the papers' nets.

A model is a function ``(num_classes, **options) -> layer spec`` registered under its name; its
keyword options (with defaults) are the model-specific keys of ``conf/model/<name>.yaml``. Each
dataset's default model is the one its ``conf/dataset/<name>.yaml`` picks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bpgrid.models.spec import Layer


@dataclass(frozen=True)
class ModelDef:
    """A registered architecture: its layer function and the input shape its paper used."""

    name: str
    layers: Callable[..., tuple[Layer, ...]]
    input_shape: tuple[int, ...] | None = None

    def options(self) -> dict[str, Any]:
        """The model-specific options and their defaults."""
        params = list(inspect.signature(self.layers).parameters.values())[1:]
        return {p.name: p.default for p in params}

    def build_layers(self, num_classes: int, **options) -> tuple[Layer, ...]:
        """The layer spec; ValueError naming the valid options for an unknown one."""
        unknown = sorted(set(options) - set(self.options()))
        if unknown:
            raise ValueError(f"model {self.name!r} takes no option {', '.join(unknown)}; "
                             f"valid options: {', '.join(self.options()) or 'none'}")
        if not (isinstance(num_classes, int) and num_classes >= 1):
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        return self.layers(num_classes, **options)


MODELS: dict[str, ModelDef] = {}


def register(name: str, input_shape: tuple[int, ...] | None = None):
    """Decorator: register a layer function under ``name`` (with its paper's input shape)."""

    def decorate(layers: Callable[..., tuple[Layer, ...]]):
        MODELS[name] = ModelDef(name, layers, input_shape)
        return layers

    return decorate


def get_model(name: str) -> ModelDef:
    """The registered model; ValueError listing the valid names for an unknown one."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    return MODELS[name]


def model_input_shape(name: str) -> tuple[int, ...] | None:
    """(C, H, W) or (D,) the paper fed this net (images are resized to it); None if flexible."""
    return get_model(name).input_shape

