"""A cell's resolved config: its identity (the hash of its factors) and its validation.

A cell is a pure function of its factors; everything else in the config (tracking, paths,
device, progress, the workers) says where and how it runs, not what it computes. So is where the
dataset's files live (``dataset.root``) and whether they may be downloaded: moving the data
renames no cell. The valid names and keys come from the registries (datasets, models, feedback
rules, norms, optimizers, losses), never from a list kept here.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bpgrid import CONF
from bpgrid.checks import check_fraction
from bpgrid.data import DATASETS, dataset_options, get_dataset
from bpgrid.data.registry import COMMON as DATASET_COMMON
from bpgrid.feedback import make_rule
from bpgrid.losses import LOSSES
from bpgrid.models import ACTIVATIONS, FREEZE, MODELS, NORMS, build_model, get_model
from bpgrid.optim import OPTIMIZERS, BatchManhattan, optimizer_options

FACTORS = ("dataset", "model", "feedback", "norm", "optimizer", "schedule", "lr_scale", "seed",
           "alignment")
#: build_model's arguments that come from elsewhere than the model group: the data, the
#: feedback and norm groups, and ``alignment``
SET_ELSEWHERE = ("input_shape", "num_classes", "feedback", "feedback_layers", "feedback_options",
                 "norm", "alignment")


#: keys of the dataset group that say where its files are, not what they hold
DATASET_LOCATION = ("root", "download")
#: a grid's name names its MLflow experiment and its folders
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ConfigError(ValueError):
    """A config value that names nothing valid; the message names the key and the choices."""


def to_dict(cfg: DictConfig | Mapping) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def factors(cfg: DictConfig | Mapping) -> dict[str, Any]:
    """The config entries that determine the cell's result."""
    out = _legacy_factors(cfg)
    out["dataset"] = {k: v for k, v in out["dataset"].items() if k not in DATASET_LOCATION}
    return out


def _legacy_factors(cfg: DictConfig | Mapping) -> dict[str, Any]:
    c = to_dict(cfg)
    out = {k: c[k] for k in FACTORS}
    out["lr_scale"] = float(out["lr_scale"])  # lr_scale=100 and 100.0 are one cell
    return out


def _hash(factors: dict[str, Any]) -> str:
    text = json.dumps(factors, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def cell_id(cfg: DictConfig | Mapping) -> str:
    """A stable id: the first 12 hex digits of the SHA-1 of the factors as canonical JSON."""
    return _hash(factors(cfg))


def legacy_cell_id(cfg: DictConfig | Mapping) -> str:
    """The id bpgrid gave this cell before ``dataset.root`` and ``dataset.download`` stopped
    being factors (the same hash, with them), to find cells made then."""
    return _hash(_legacy_factors(cfg))


def value_text(value: Any) -> str:
    """A value as a Hydra override writes it, in one canonical form: a number that is whole
    without its decimal point (``100``, not ``100.0``), any other as Python writes it in the
    fewest digits (``0.25``, ``0.001`` for ``1e-3``, ``1e-05``), ``true``/``false``, ``null``,
    lists in brackets (``[1, 51, 61]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


def flat_params(cfg: DictConfig | Mapping) -> dict[str, str]:
    """Every factor as a dotted key (``feedback.flip_prob``) and its value as typed
    (``value_text``: ``lr_scale=100`` is ``100``), for MLflow."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value_text(value)

    walk("", factors(cfg))
    return out


@functools.cache
def top_keys() -> frozenset[str]:
    """The keys a cell's config may have: conf/config.yaml's own, its groups', and Hydra's."""
    base = OmegaConf.load(CONF / "config.yaml")
    groups = (next(iter(d)) if isinstance(d, Mapping) else d for d in base.defaults)
    return frozenset({*base, *groups, "hydra"} - {"defaults", "_self_"})


def model_keys(name: str) -> set[str]:
    """The keys of a model config: ``name``, build_model's own options and the model's options."""
    params = inspect.signature(build_model).parameters.values()
    common = {p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in SET_ELSEWHERE}
    return {"name", *common, *get_model(name).options()}


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


def _fraction(key: str, value: Any, *, allow_one: bool) -> None:
    _check(key, isinstance(value, int | float), f"must be a number, got {value!r}")
    try:
        check_fraction(key, value, allow_one=allow_one)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _name(key: str, value: Any) -> None:
    """A name that becomes a folder: letters, digits, ``_.-``, no path (``../x`` is refused)."""
    _check(key, isinstance(value, str) and NAME.fullmatch(value) is not None,
           f"must be a plain name (letters, digits, _ . -, not starting with . or -), got "
           f"{value!r}")


def _fusing(grid: Mapping) -> None:
    """How a sweep packs cells into fused arrays: ``grid.fuse`` auto or off (YAML's bare off
    reads as false), ``grid.max_array`` null or a positive integer."""
    fuse, most = grid.get("fuse", "auto"), grid.get("max_array")
    _check("grid.fuse", fuse in ("auto", "off") or fuse is False,
           f"must be auto or off, got {fuse!r}")
    _check("grid.max_array", most is None or (isinstance(most, int)
                                              and not isinstance(most, bool) and most >= 1),
           f"must be null (sized by the device) or a positive integer, got {most!r}")


def _method(method: Any) -> None:
    """A method (a table column) is a preset of factors with a name and a label."""
    _check("method", isinstance(method, Mapping), f"must name a conf/method preset, got {method!r}")
    for key in ("name", "label"):
        value = method.get(key)
        _check(f"method.{key}", isinstance(value, str) and value != "",
               f"must be a non-empty string, got {value!r}")


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
    unknown = sorted(set(c) - top_keys())
    _check(unknown[0] if unknown else "", not unknown,
           f"not a key of the config (its keys: {', '.join(sorted(top_keys()))})")
    ds, model, fb, opt, sched = c["dataset"], c["model"], c["feedback"], c["optimizer"], \
        c["schedule"]
    _choice("dataset", ds.get("name"), sorted(DATASETS))
    _keys("dataset", ds["name"], ds, {"name", *DATASET_COMMON, *dataset_options(ds["name"])})
    _check("dataset.download", not ds.get("download") or get_dataset(ds["name"]).source != "manual",
           f"{ds['name']} cannot be downloaded; get it by hand: {get_dataset(ds['name']).obtain}")
    _choice("model", model.get("name"), sorted(MODELS))
    _keys("model", model["name"], model, model_keys(model["name"]))
    _choice("model.freeze", model.get("freeze", "none"), FREEZE)
    _choice("model.activation", model.get("activation", "relu"), ACTIVATIONS)
    _fraction("model.dropout", model.get("dropout", 0.0), allow_one=False)
    try:
        make_rule(fb.get("name"), **{k: v for k, v in fb.items() if k not in ("name", "layers")})
    except ValueError as err:
        raise ConfigError(f"feedback: {err}") from None
    _choice("norm", c["norm"].get("name"), NORMS)
    _choice("optimizer", opt.get("name"), OPTIMIZERS)
    _keys("optimizer", opt["name"], opt, {"name", *optimizer_options(opt["name"])})
    if opt["name"] == "bm":
        _choice("optimizer.setting", opt.get("setting"), BatchManhattan.SETTINGS)
    if "method" in c:
        _method(c["method"])
    _check("cuda_graphs", isinstance(c.get("cuda_graphs", True), bool),
           f"must be true or false, got {c.get('cuda_graphs')!r}")
    _check("lr_scale", isinstance(c["lr_scale"], int | float) and c["lr_scale"] > 0,
           f"must be a positive number, got {c['lr_scale']!r}")
    _check("seed", isinstance(c["seed"], int) and not isinstance(c["seed"], bool)
           and c["seed"] >= 0, f"must be a non-negative integer, got {c['seed']!r}")
    _name("grid.name", c.get("grid", {}).get("name", "adhoc"))
    _fusing(c.get("grid", {}))
    every = c.get("grid", {}).get("progress_seconds", 10)
    _check("grid.progress_seconds", isinstance(every, int | float) and not isinstance(every, bool)
           and every > 0, f"must be a positive number of seconds, got {every!r}")
    _name("tracking.experiment", c.get("tracking", {}).get("experiment", "adhoc"))
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
