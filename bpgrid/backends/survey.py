"""What a sweep finds before it starts: each cell finished, owned by a live job, or to run.

For every cell: a folder under its legacy id is moved to the new one (bpgrid/migrate.py); an
unreadable result is set aside (the cell then runs again, from its checkpoint); a result whose
MLflow run a kill left RUNNING has its run ended; a cell whose lease names a live owner (another
sweep's worker, a SLURM job, ``bpgrid.train``) is left to that owner and reported as ``running``.
One ``squeue`` call answers for every SLURM job named in the leases.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bpgrid import lease
from bpgrid.cellfiles import CellFiles, stored_result
from bpgrid.checkpoint import save_json
from bpgrid.config import cell_id
from bpgrid.jobs import slurm_states
from bpgrid.migrate import migrate
from bpgrid.tracking import Tracker


def cell_files(config: Mapping[str, Any]) -> CellFiles:
    return CellFiles(Path(config["cells_dir"]) / cell_id(config))


@dataclass
class Survey:
    """The cells as the sweep found them, by cell id."""

    finished: dict[str, dict] = field(default_factory=dict)  # cell id -> its stored result
    running: dict[str, dict] = field(default_factory=dict)  # cell id -> its live owner's lease
    todo: list[dict[str, Any]] = field(default_factory=list)  # configs of the cells to run
    migrated: list[str] = field(default_factory=list)  # "old -> new" cell ids
    set_aside: list[str] = field(default_factory=list)


class _Trackers:
    """One Tracker per store and experiment, made when first needed."""

    def __init__(self) -> None:
        self.made: dict[tuple, Tracker] = {}

    def __call__(self, config: Mapping[str, Any]) -> Tracker:
        t = config["tracking"]
        key = (t["uri"], t["experiment"], t.get("artifacts"))
        if key not in self.made:
            self.made[key] = Tracker(*key)
        return self.made[key]


def survey(configs: list[dict[str, Any]]) -> Survey:
    """Sort the cells into finished, running and to run (see the module's docstring)."""
    found, trackers = Survey(), _Trackers()
    unfinished = []
    for config in configs:
        try:
            old = migrate(config, lambda a, b, c=config: trackers(c).retag(a, b))
            if old:
                found.migrated.append(f"{old} -> {cell_id(config)}")
        except Exception as err:  # the cell's own run tries again and fails with this
            print(f"sweep: cell {cell_id(config)}: could not move its legacy folder: {err}",
                  file=sys.stderr)
        files = cell_files(config)
        result, aside = stored_result(files)
        found.set_aside += aside
        if result is not None and _ended(config, files, result, trackers):
            found.finished[files.cell_id] = result
        else:
            unfinished.append((config, lease.read(files.lease)))
    states = slurm_states(held["job_id"] for _, held in unfinished if held and held.get("job_id"))
    for config, held in unfinished:
        if held is not None and lease.alive(held, states):
            found.running[cell_id(config)] = held
        else:
            found.todo.append(config)
    return found


def _ended(config: Mapping[str, Any], files: CellFiles, result: dict, trackers) -> bool:
    """The result's MLflow run is ended (ending it here if a kill came before); False if it
    cannot be, so the cell goes to a worker, whose attempt says why."""
    if result.get("run_ended") or not result.get("run_id"):
        return True
    try:
        trackers(config).close(result["run_id"])
        save_json(files.result, {**result, "run_ended": True})
    except Exception as err:
        print(f"sweep: cell {files.cell_id}: could not end its MLflow run: {err}",
              file=sys.stderr)
        return False
    return True
