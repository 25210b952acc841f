"""A cell's resolved config: its identity (the hash of its factors) and its validation.

A cell is a pure function of its factors; everything else in the config (tracking, paths,
device, progress) says where and how it runs, not what it computes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bpgrid.data import DATASETS, dataset_options
from bpgrid.feedback import make_rule
from bpgrid.models import MODELS, get_model
from bpgrid.models.build import FREEZE
from bpgrid.models.net import NORMS
from bpgrid.optim import BatchManhattan

FACTORS = ("dataset", "model", "feedback", "norm", "optimizer", "schedule", "lr_scale", "seed",
           "alignment")
OPTIMIZERS = ("sgd", "bm", "adam")
LOSSES = ("cross_entropy", "hinge", "mse")
MODEL_COMMON = ("name", "activation", "dropout", "freeze", "pretrained_first_layer")


class ConfigError(ValueError):
    """A config value that names nothing valid; the message names the key and the choices."""


def to_dict(cfg: DictConfig | Mapping) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def factors(cfg: DictConfig | Mapping) -> dict[str, Any]:
    """The config entries that determine the cell's result."""
    c = to_dict(cfg)
    out = {k: c[k] for k in FACTORS}
    out["lr_scale"] = float(out["lr_scale"])  # lr_scale=100 and 100.0 are one cell
    return out


def cell_id(cfg: DictConfig | Mapping) -> str:
    """A stable id: the first 12 hex digits of the SHA-1 of the factors as canonical JSON."""
    text = json.dumps(factors(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def flat_params(cfg: DictConfig | Mapping) -> dict[str, str]:
    """Every factor as a dotted key (``feedback.flip_prob``) and a string value, for MLflow."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = json.dumps(value) if isinstance(value, list) else str(value)

    walk("", factors(cfg))
    return out


def _choice(key: str, value: Any, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: "
                          f"{', '.join(map(str, choices))}")


def _keys(group: str, name: str, keys, allowed) -> None:
    unknown = sorted(set(keys) - set(allowed))
    if unknown:
        raise ConfigError(f"{group}.{unknown[0]} is not an option of {group} {name!r}; valid "
                          f"options: {', '.join(sorted(allowed))}")


def _check(key: str, ok: bool, what: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {what}")


def _steps(c: dict, epochs_key: str, values_key: str) -> None:
    epochs, values = c[epochs_key], c[values_key]
    key = f"schedule.{epochs_key}"
    _check(key, len(epochs) == len(values) and len(epochs) >= 1,
           f"needs one entry per schedule.{values_key} entry, got {epochs} and {values}")
    _check(key, epochs[0] == 1 and epochs == sorted(set(epochs)),
           f"must start at epoch 1 and increase, got {epochs}")


def validate(cfg: DictConfig | Mapping) -> None:
    """Raise ConfigError naming the bad key and the allowed values, before any work starts."""
    c = to_dict(cfg)
    for key in FACTORS:
        _check(key, key in c, "missing")
    ds, model, fb, opt, sched = c["dataset"], c["model"], c["feedback"], c["optimizer"], \
        c["schedule"]
    _choice("dataset", ds.get("name"), sorted(DATASETS))
    _keys("dataset", ds["name"], ds, {"name", "root", "download", "seed",
                                      *dataset_options(ds["name"])})
    _choice("model", model.get("name"), sorted(MODELS))
    _keys("model", model["name"], model, {*MODEL_COMMON, *get_model(model["name"]).options()})
    _choice("model.freeze", model.get("freeze", "none"), FREEZE)
    try:
        make_rule(fb.get("name"), **{k: v for k, v in fb.items() if k not in ("name", "layers")})
    except ValueError as err:
        raise ConfigError(f"feedback: {err}") from None
    _choice("norm", c["norm"].get("name"), NORMS)
    _choice("optimizer", opt.get("name"), OPTIMIZERS)
    if opt["name"] == "bm":
        _choice("optimizer.setting", opt.get("setting"), BatchManhattan.SETTINGS)
    _check("cuda_graphs", isinstance(c.get("cuda_graphs", True), bool),
           f"must be true or false, got {c.get('cuda_graphs')!r}")
    _check("lr_scale", isinstance(c["lr_scale"], int | float) and c["lr_scale"] > 0,
           f"must be a positive number, got {c['lr_scale']!r}")
    _check("schedule.epochs", isinstance(sched["epochs"], int) and sched["epochs"] >= 1,
           f"must be a positive int, got {sched['epochs']!r}")
    _steps(sched, "lr_epochs", "lr_values")
    _steps(sched, "batch_size_epochs", "batch_sizes")
    _check("schedule.batch_sizes", all(b >= 1 for b in sched["batch_sizes"]),
           f"must be positive, got {sched['batch_sizes']}")
    _choice("schedule.loss", sched["loss"], LOSSES)
    for key in ("weight_clip", "grad_clip"):
        v = sched.get(key)
        _check(f"schedule.{key}", v is None or v > 0, f"must be null or positive, got {v!r}")
