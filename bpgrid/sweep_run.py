"""A sweep's own MLflow run: the parent of the runs of the cells it starts.

Made in the sweep's process just before its cells are launched (a sweep with nothing to run
makes none), in the experiment its cells log to. It is named by the grid and the sweep's start
(``quick 2026-11-23 17:55:06``) and tagged with the sweep id; its parameters are the sweep's
factors and axes with every value (``lr_scale = 100,10,1,0.1,0.01``); its artifacts are the
grid's composed config (``multirun.yaml``), the grid file (``grid.yaml``) and the command line with
its axes (``sweep.yaml``). The cells get its run id as ``tracking.parent_run_id``, which is no
factor: their ids do not change. It ends with the sweep: the cells' counts as metrics
(``cells``, ``cells_done``, ``cells_failed``, ...), ``summary.json`` as an artifact, FINISHED, or
FAILED when a cell failed, or KILLED when a signal stopped the sweep (RUNNING while a detached
SLURM array goes on).

A rerun is a new sweep: its own id and run. A cell it resumes logs into the run the cell already
has, which keeps its history and its parent (the sweep that started it) and takes the new sweep
id as its ``sweep_id`` tag.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Metric, Param
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
from omegaconf import OmegaConf

from bpgrid.backends import Summary
from bpgrid.grid import CONF, Grid
from bpgrid.naming import factor_key
from bpgrid.shutdown import Interrupted
from bpgrid.tracking import Tracker

KIND_TAG = "bpgrid.kind"  # "sweep" on a sweep's run ("cell" runs carry a cell_id instead)


def axes(jobs: list[list[str]]) -> dict[str, list[str]]:
    """Every key the cells' overrides set, with its values in order, as typed."""
    out: dict[str, list[str]] = {}
    for job in jobs:
        for line in job:
            key, _, value = line.partition("=")
            values = out.setdefault(key.lstrip("+~"), [])
            if value not in values:
                values.append(value)
    return out


class SweepRun:
    """The sweep's run in each experiment its cells log to, once its cells are launched."""

    def __init__(self, grid: Grid, argv: list[str]) -> None:
        self.grid, self.argv = grid, argv
        self.runs: dict[tuple[str, str], tuple[Tracker, str]] = {}  # (uri, experiment)

    @property
    def name(self) -> str:
        day, _, clock = self.grid.sweep_id[:19].partition("_")
        return f"{self.grid.name} {day} {clock.replace('-', ':')}"

    def open(self, cells: list[dict[str, Any]]) -> None:
        """Make the sweep's run (before these cells are launched) and the cells its children."""
        for c in cells:
            t = c["tracking"]
            key = (t["uri"], t["experiment"])
            if key not in self.runs:
                tracker = Tracker(t["uri"], t["experiment"], t.get("artifacts"))
                self.runs[key] = tracker, self._start(tracker, len(cells))
            t["parent_run_id"] = self.runs[key][1]

    def _start(self, tracker: Tracker, launched: int) -> str:
        grid = self.grid
        run = tracker.client.create_run(tracker.experiment_id, run_name=self.name, tags={
            KIND_TAG: "sweep", "grid": grid.name, "sweep_id": grid.sweep_id,
            "launcher": str(grid.launcher.get("name")), "sweep_dir": str(grid.folder)})
        run_id = run.info.run_id
        swept = axes(grid.jobs)
        params = {k: ",".join(v)[:MAX_PARAM_VAL_LENGTH] for k, v in swept.items()
                  if k in ("grid", "method") or factor_key(k)}
        params.update({"cells": str(len(grid.jobs)), "cells_launched": str(launched)})
        tracker.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            OmegaConf.save(grid.config, folder / "multirun.yaml")
            (folder / "sweep.yaml").write_text(yaml.safe_dump({
                "grid": grid.name, "sweep_id": grid.sweep_id,
                "command": " ".join(["python -m bpgrid.sweep", *self.argv]),
                "cells": len(grid.jobs), "axes": swept}, sort_keys=False))
            choice = OmegaConf.select(grid.config, "hydra.runtime.choices.grid")
            source = CONF / "grid" / f"{choice}.yaml"
            if choice and source.is_file():
                (folder / "grid.yaml").write_text(source.read_text())
            for path in sorted(folder.iterdir()):
                tracker.log_artifact(run_id, path)
        return run_id

    def close(self, summary: Summary) -> None:
        """End the sweep's runs with the summary: counts as metrics, summary.json, its state."""
        if summary.detached:
            state = None  # its jobs go on
        elif summary.stopped_by:
            state = "KILLED"
        else:
            state = "FAILED" if summary.counts.get("failed") else "FINISHED"
        metrics = {"cells": summary.total, **{f"cells_{k}": n for k, n in summary.counts.items()}}
        for tracker, run_id in self.runs.values():
            try:
                tracker.client.log_batch(run_id, metrics=[
                    Metric(k, float(v), 0, 0) for k, v in metrics.items()])
                tracker.set_tags(run_id, {"summary": summary.line()}
                                 | ({"detached": summary.detached} if summary.detached else {}))
                with tempfile.TemporaryDirectory() as tmp:
                    tracker.log_artifact(run_id, summary.save(Path(tmp)))
                if state:
                    tracker.client.set_terminated(run_id, state)
            except Exception as err:  # the cells' own records stand; say so, do not fail
                print(f"sweep: its MLflow run {run_id} could not be ended: {err}",
                      file=sys.stderr)

    def abort(self, err: BaseException) -> None:
        """The sweep ended by an exception: its runs KILLED (a signal) or FAILED."""
        stopped = isinstance(err, Interrupted | KeyboardInterrupt)
        for tracker, run_id in self.runs.values():
            try:
                if not stopped:
                    tracker.set_tags(run_id, {"error": f"{type(err).__name__}: {err}"[-5000:]})
                tracker.client.set_terminated(run_id, "KILLED" if stopped else "FAILED")
            except Exception:
                pass  # the exception that ended the sweep is the one to tell
