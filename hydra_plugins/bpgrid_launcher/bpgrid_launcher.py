"""bpgrid's Hydra launcher: Hydra's sweeper expands the grid, bpgrid.dispatch runs the cells.

Unlike hydra-submitit-launcher, a crashed cell does not abort the sweep and a requeued SLURM job
resumes from the cell's checkpoint. Every cell's config is composed and validated before anything
is launched.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict


class BpgridSweeper(BasicSweeper):
    """Hydra's basic sweeper without its per-job trial composition: the bpgrid launcher composes
    and validates every cell itself (once), which halves the start-up of a large grid."""

    def validate_batch_is_legal(self, batch) -> None:
        return None


class BpgridLauncher(Launcher):
    def __init__(self, kind: str = "local", **params: Any) -> None:
        self.kind, self.params = kind, params
        self.config: DictConfig | None = None
        self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config

    def _cell_configs(self, job_overrides: Sequence[Sequence[str]], sweep_id: str) -> list[dict]:
        """Every job's resolved config. Jobs that differ only in plain values (lr_scale=10,
        feedback.flip_prob=0.5) share one Hydra composition, then get their values set, as
        Hydra itself applies value overrides after composing."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        loader = self.hydra_context.config_loader
        groups = set(loader.list_groups(""))
        cache: dict[tuple[str, ...], DictConfig] = {}
        configs = []
        for n, overrides in enumerate(job_overrides, start=1):
            parsed = parser.parse_overrides(list(overrides))
            plain = [o for o in parsed if o.type == OverrideType.CHANGE and o.package is None
                     and o.key_or_group not in groups and "/" not in o.key_or_group]
            shared = tuple(o.input_line for o in parsed if o not in plain)
            if shared not in cache:
                cache[shared] = loader.load_sweep_config(self.config, list(shared))
            cfg = cache[shared].copy()
            with open_dict(cfg):
                for o in plain:
                    OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
                del cfg["hydra"]
                cfg.grid.sweep_id = sweep_id
            configs.append(OmegaConf.to_container(cfg, resolve=True))
            if n % 200 == 0:
                print(f"sweep: composed {n}/{len(job_overrides)} cells", file=sys.stderr)
        return configs

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
               ) -> Sequence[JobReturn]:
        from bpgrid.config import ConfigError, validate
        from bpgrid.dispatch import LAST_SWEEP, dispatch, write_summary

        folder = Path(str(self.config.hydra.sweep.dir))
        configs = self._cell_configs(job_overrides, folder.name)
        for config, overrides in zip(configs, job_overrides, strict=True):
            try:
                validate(config)
            except ConfigError as err:
                raise ConfigError(f"{err}\n  in the cell: {' '.join(overrides)}") from None
        grid = self.config.grid
        if grid.get("dry_run"):
            print(f"grid {grid.name}: {len(configs)} cells (dry run, nothing launched)")
            for overrides in job_overrides[:5]:
                print("  " + " ".join(filter_overrides(overrides)))
            LAST_SWEEP.append(None)
            return []
        summary = dispatch(configs, self.kind, self.params, folder / "jobs")
        path = write_summary(summary, folder)
        print(summary.line())
        for failure in summary.failed:
            print(f"  failed {failure['cell_id']}: {failure['log']}")
        print(f"summary: {path}", file=sys.stderr)
        LAST_SWEEP.append(summary)
        returns = []
        for overrides in job_overrides:
            ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            ret.return_value = None
            returns.append(ret)
        return returns
