"""A grid from the command line: one resolved, validated config per cell, and the sweep's settings.

Hydra's public compose API composes the configs; nothing runs inside Hydra, so the sweep's result
comes back as a value. The axes are the grid file's ``hydra.sweeper.params`` and every ``key=a,b``
on the command line (which replaces the grid's axis of the same key), crossed in order, as Hydra's
basic sweeper crosses them. Cells that differ only in plain values (``lr_scale=10``,
``feedback.flip_prob=0.5``) share one composition and then get their values set, as Hydra itself
applies value overrides after composing: experiment_a's 825 cells take 165 compositions.
"""

from __future__ import annotations

import functools
import itertools
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from bpgrid import CONF
from bpgrid.config import ConfigError, validate
from bpgrid.data.registry import EMBEDDED


@dataclass
class Grid:
    """A sweep as its command line gives it: the cells' overrides, and where and how they run."""

    name: str
    jobs: list[list[str]]  # each cell's overrides, in the order of the axes' cross product
    launcher: dict[str, Any]  # hydra.launcher: the backend's name and its settings
    folder: Path  # hydra.sweep.dir: the jobs' logs, multirun.yaml, summary.json
    dry_run: bool
    config: DictConfig  # the sweep's config, Hydra's node included (saved as multirun.yaml)
    sweep_id: str = ""  # this run of the sweep (``<date>_<time>_<grid>_<4 hex>``): tags its
    # MLflow runs, marks its cells' failures

    def shown(self, job: list[str]) -> str:
        """A cell's overrides as a user reads them, Hydra's own settings left out."""
        return " ".join(line for line in job
                        if not line.lstrip("+~").startswith(("hydra.", "hydra/")))


def expand(lines: list[str], parser: OverridesParser | None = None) -> list[list[str]]:
    """Each cell's overrides: the cross product of the axes in order of first mention. A later
    line for a key replaces the earlier one, so the command line wins over the grid file."""
    axes: dict[str, list[str]] = {}
    for override in (parser or OverridesParser.create()).parse_overrides(lines):
        key = override.get_key_element()
        if not override.is_sweep_override():
            axes[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_hydra_override():
            raise ConfigError(f"{override.input_line}: a sweep's own settings take one value")
        elif override.is_discrete_sweep():
            axes[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise ConfigError(f"{override.input_line}: an axis lists its values (a,b), or is "
                              f"range(...) or glob(...)")
    return [list(cell) for cell in itertools.product(*axes.values())]


def load_grid(argv: list[str]) -> Grid:
    """The sweep of ``python -m bpgrid.sweep`` with these arguments, its cells not yet composed."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        fixed = [o.input_line for o in parser.parse_overrides(argv) if not o.is_sweep_override()]
        sweep = compose("sweep", fixed, return_hydra_config=True)
        params = sweep.hydra.sweeper.params or {}
        jobs = expand([f"{k}={v}" for k, v in params.items()] + argv, parser)
        launcher = OmegaConf.to_container(sweep.hydra.launcher, resolve=True)
        folder = Path(str(sweep.hydra.sweep.dir))  # ${now:...} resolves once, here
    name = str(sweep.grid.name)
    sweep_id = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{name}_{secrets.token_hex(2)}"
    return Grid(name, jobs, launcher, folder, bool(sweep.grid.get("dry_run")), sweep, sweep_id)


def datasets(grid: Grid) -> list[dict[str, Any]]:
    """The resolved ``dataset`` config of every kind of cell in the grid, composing once per
    distinct set of dataset overrides (``dataset=``, ``dataset.root=``, ...), not once per cell:
    what the missing-data check reads before the cells are composed. An embedded dataset named
    by an override needs no composing (it has no files)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        parse = functools.cache(OverridesParser.create().parse_override)
        found: dict[tuple[str, ...], dict[str, Any]] = {}
        for job in grid.jobs:
            overrides = [parse(line) for line in job]
            own = tuple(o.input_line for o in overrides if _about_dataset(o))
            names = [o.value() for o in overrides if o.key_or_group == "dataset"]
            if own in found or (names and names[-1] in EMBEDDED):
                continue
            rest = [o.input_line for o in overrides if not _about_dataset(o)]
            cfg = compose("sweep", rest + list(own))
            found[own] = OmegaConf.to_container(cfg.dataset, resolve=True)
    return list(found.values())


def _about_dataset(override: Override) -> bool:
    key = override.key_or_group
    return key == "dataset" or key.startswith("dataset.")


def compose_cells(grid: Grid) -> list[dict[str, Any]]:
    """Every cell's resolved config, each validated; ConfigError naming the first bad cell."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        parser = OverridesParser.create(config_loader=loader)
        cells = _cells(grid.jobs, grid.sweep_id, parser, set(loader.list_groups("")))
    for config, job in zip(cells, grid.jobs, strict=True):
        try:
            validate(config)
        except ConfigError as err:
            raise ConfigError(f"{err}\n  in the cell: {grid.shown(job)}") from None
    return cells


def _plain(override: Override, groups: set[str]) -> bool:
    """A value set after composing: changes no config group, Hydra's settings or a package."""
    key = override.key_or_group
    return (override.type == OverrideType.CHANGE and override.package is None
            and key not in groups and "/" not in key and not override.is_hydra_override())


def _cells(jobs: list[list[str]], sweep_id: str, parser: OverridesParser,
           groups: set[str]) -> list[dict[str, Any]]:
    """Every job's resolved config, composing once per distinct set of structural overrides.

    The cells of one composition set the same keys (only their values differ), so each sets its
    values on that composition in place and is resolved from it: no copy per cell."""
    parse = functools.cache(parser.parse_override)
    composed: dict[tuple, DictConfig] = {}
    cells = []
    for n, job in enumerate(jobs, start=1):
        overrides = [parse(line) for line in job]
        plain = [o for o in overrides if _plain(o, groups)]
        shared = tuple(o.input_line for o in overrides if not _plain(o, groups))
        key = (shared, tuple(o.key_or_group for o in plain))
        if key not in composed:
            composed[key] = compose("sweep", list(shared))
            with open_dict(composed[key]):
                composed[key].grid.sweep_id = sweep_id
        cfg = composed[key]
        for o in plain:  # in struct mode, as Hydra applies them: a typo'd key is an error
            try:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
            except OmegaConfBaseException as err:
                raise ConfigError(f"could not override {o.input_line!r}: {err}") from None
        cells.append(OmegaConf.to_container(cfg, resolve=True))
        if n % 200 == 0:
            print(f"composed {n}/{len(jobs)} cells", file=sys.stderr)
    return cells
