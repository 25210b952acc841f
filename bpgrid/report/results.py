"""``bpgrid.results``: a grid's cells and their runs as one pandas DataFrame, every factor a
column, for notebooks."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from mlflow.tracking import MlflowClient

from bpgrid.report.cells import compose_grid
from bpgrid.report.records import RUN_FIELDS, fetch_runs, metric_history, with_runs

CURVE_METRICS = ("train_loss", "train_error", "val_error")  # learning curves, by epoch
FIRST = ["cell_id", "dataset", "column", "label", "method", "method_label", "lr_scale", "seed",
         "status", "best_val_error", "best_epoch", "final_val_error"]


def results(grid: str, uri: str | None = None, *, overrides: Sequence[str] = (),
            curves: bool = False) -> pd.DataFrame:
    """One row per cell of the grid, holding its run (the latest when it ran more than once).

    Columns: cell_id, dataset, column (the table column) and its label, method and
    method_label, lr_scale, seed, status (done | diverged | failed | running, or missing for a
    cell that never started), best_val_error, best_epoch, final_val_error (%), every other
    factor (``model``, ``feedback``, ``feedback.flip_prob``, ``optimizer``, ``schedule.epochs``,
    ...), then run_id, experiment, start_time and code_version. ``uri`` is the MLflow store
    (default: the grid's ``tracking.uri``); ``overrides`` are the sweep's (``dataset=mnist``,
    ``seed=0,1,2``). With ``curves=True`` a column ``curve`` holds each run's train_loss,
    train_error and val_error by epoch as a DataFrame (None without a run).
    """
    cells = compose_grid([f"+grid={grid}", *overrides], note=lambda _: None)
    uri = uri or str(cells.config.tracking.uri)
    frame = with_runs(cells.cells, fetch_runs(uri, cells.cells.cell_id))
    rest = [c for c in frame.columns if c not in FIRST and c not in RUN_FIELDS]
    frame = frame[[*FIRST, *rest, *(c for c in RUN_FIELDS if c not in FIRST)]]
    if curves:
        client = MlflowClient(uri)
        frame = frame.assign(curve=[None if pd.isna(run) else
                                    metric_history(client, run, CURVE_METRICS)
                                    for run in frame.run_id])
    return frame.reset_index(drop=True)
