"""Small MLflow stores with known numbers, written as the trainer writes runs, and the cells of
the grids they belong to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from bpgrid.cell import code_version
from bpgrid.config import cell_id, flat_params
from bpgrid.naming import run_name
from bpgrid.report.records import fetch_runs, to_records, with_runs
from bpgrid.tracking import Tracker

LABELS = {"sgd": "SGD", "usf_bn_bm": "uSF+BN+BM", "nusf": "NuSF", "brsf_bn_bm": "brSF+BN+BM",
          "frsf_bn_bm": "frSF+BN+BM"}

# (dataset, method, seed, lr_scale, MLflow status, cell status, best_val_error)
RUNS = [
    ("mnist", "sgd", 0, 10, "FINISHED", "done", 1.00),
    ("mnist", "sgd", 0, 1, "FINISHED", "done", 0.67),
    ("mnist", "sgd", 0, 0.1, "FINISHED", "done", 0.90),
    ("mnist", "usf_bn_bm", 0, 10, "FINISHED", "done", 0.50),
    ("mnist", "usf_bn_bm", 0, 1, "FINISHED", "done", 0.80),
    ("mnist", "usf_bn_bm", 0, 0.1, "FINISHED", "done", 0.90),
    ("mnist", "nusf", 0, 10, "FAILED", None, None),
    ("mnist", "nusf", 0, 1, "FAILED", None, None),
    ("mnist", "nusf", 0, 0.1, "FAILED", None, None),
    ("mnist", "frsf_bn_bm", 0, 1, "FINISHED", "done", 3.67),
    ("cifar10", "sgd", 0, 10, "FINISHED", "done", 22.0),
    ("cifar10", "sgd", 0, 1, "FINISHED", "done", 23.0),
    ("cifar10", "sgd", 0, 0.1, "FINISHED", "done", 25.0),
    ("cifar10", "sgd", 1, 1, "FINISHED", "done", 24.0),
    ("cifar10", "usf_bn_bm", 0, 1, "FINISHED", "done", 19.5),
    ("cifar10", "nusf", 0, 10, "FINISHED", "done", 40.6),
    ("cifar10", "nusf", 0, 1, "FINISHED", "diverged", 41.0),
    ("cifar10", "brsf_bn_bm", 0, 10, "FINISHED", "diverged", None),
    ("cifar10", "brsf_bn_bm", 0, 1, "FINISHED", "diverged", None),
    ("cifar10", "brsf_bn_bm", 0, 0.1, "FINISHED", "diverged", None),
    ("cifar10", "frsf_bn_bm", 0, 1, "FINISHED", "done", 26.0),
]
COLUMNS = ["sgd", "usf_bn_bm", "nusf", "brsf_bn_bm", "frsf_bn_bm"]
SCALES = [10, 1, 0.1]


def name(dataset: str, method: str, seed: int, scale: float) -> str:
    """The synthetic cells' ids."""
    return f"{dataset}-{method}-s{seed}-lr{scale:g}"


def grid_cells(cells: Iterable[tuple[str, str, int, float]]) -> pd.DataFrame:
    """A grid's cells as ``bpgrid.report.cells.cell_frame`` gives them, from (dataset, method,
    seed, lr_scale) tuples."""
    return pd.DataFrame([{"cell_id": name(*c), "column": c[1], "label": LABELS[c[1]],
                          "method": c[1], "method_label": LABELS[c[1]], "dataset": c[0],
                          "lr_scale": float(c[3]), "seed": c[2]} for c in cells])


# The synthetic grid: both datasets x COLUMNS x SCALES at seed 0, and CIFAR10's SGD at seed 1 too.
GRID = grid_cells([*((d, m, 0, s) for d in ("mnist", "cifar10") for m in COLUMNS for s in SCALES),
                   *(("cifar10", "sgd", 1, s) for s in SCALES)])


def write_store(uri: str, grid: str = "synthetic", runs=RUNS) -> None:
    """Runs as bpgrid wrote them before readable names: named by their cell id, lr_scale as
    ``10.0``."""
    tracker = Tracker(uri, grid)
    for dataset, method, seed, scale, mlflow_status, status, best in runs:
        tags = {"grid": grid, "method": method, "method_label": LABELS[method],
                "dataset": dataset}
        run = tracker.start(name(dataset, method, seed, scale),
                            {"lr_scale": str(float(scale)), "seed": str(seed)}, tags)
        _finish(tracker, run, mlflow_status, status, best)


def _finish(tracker: Tracker, run: str, mlflow_status: str, status: str | None,
            best: float | None) -> None:
    tracker.log_metrics(run, {"val_error": 50.0, "train_loss": 2.0}, 1)
    if best is not None:
        tracker.log_metrics(run, {"val_error": best, "best_val_error": best, "best_epoch": 2,
                                  "train_loss": 1.0}, 2)
    if mlflow_status == "FAILED":
        tracker.fail(run, "Traceback: boom")
    elif mlflow_status == "FINISHED":
        tracker.set_tags(run, {"status": status})
        tracker.finish(run)


def records(uri: str, cells: pd.DataFrame = GRID) -> pd.DataFrame:
    """The table's records of these cells from the store."""
    return to_records(with_runs(cells, fetch_runs(uri, cells.cell_id)))


def write_cell_run(uri: str, config: Mapping[str, Any], mlflow_status: str = "FINISHED",
                   status: str | None = "done", best: float | None = None) -> str:
    """A run of a composed cell, tagged and named as ``bpgrid.cell.run_cell`` tags it, in the
    cell's ``tracking.experiment``; ``mlflow_status`` RUNNING leaves it unfinished."""
    method = config.get("method", {})
    tags = {"grid": config["grid"]["name"], "method": method.get("name", ""),
            "method_label": method.get("label", ""), "dataset": config["dataset"]["name"],
            "code_version": code_version()}
    tracker = Tracker(uri, config["tracking"]["experiment"])
    run = tracker.start(cell_id(config), flat_params(config), tags, name=run_name(config))
    _finish(tracker, run, mlflow_status, status, best)
    return run
