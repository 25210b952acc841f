"""A grid's MLflow runs as DataFrames: every run with all its fields, then one record per cell."""

from __future__ import annotations

import pandas as pd
from mlflow.tracking import MlflowClient

RECORD_COLUMNS = ["dataset", "column", "label", "lr_scale", "seed", "status", "best", "run_id",
                  "code_version"]


class ReportError(ValueError):
    """The runs cannot make the requested table; the message says why and what to do."""


def fetch_runs(uri: str, grid: str) -> pd.DataFrame:
    """One row per run of the grid's experiment: run_id, state (MLflow's), start_time, and its
    fields as ``mlflow.search_runs`` names them: params.*, tags.*, metrics.*."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(grid)
    runs = client.search_runs([experiment.experiment_id], max_results=50000) if experiment else []
    if not runs:
        raise ReportError(f"no runs in the MLflow experiment {grid!r} at {uri}; run "
                          f"`python -m bpgrid.sweep +grid={grid}` first (or set tracking.uri)")
    frame = pd.DataFrame([
        {"run_id": r.info.run_id, "state": r.info.status, "start_time": r.info.start_time or 0,
         **{f"params.{k}": v for k, v in r.data.params.items()},
         **{f"tags.{k}": v for k, v in r.data.tags.items()},
         **{f"metrics.{k}": v for k, v in r.data.metrics.items()}} for r in runs])
    foreign = sorted(set(_field(frame, "tags.grid", "?")) - {grid})
    if foreign:
        raise ReportError(f"the MLflow experiment {grid!r} holds runs of grid(s) {foreign}; a "
                          f"report reads one grid's runs (python -m bpgrid.report +grid=...)")
    return frame


def _field(frame: pd.DataFrame, name: str, default) -> pd.Series:
    """A column of the runs, ``default`` where a run (or every run) lacks it."""
    column = frame[name] if name in frame else pd.Series(default, index=frame.index)
    return column.fillna(default)


def to_records(runs: pd.DataFrame, column_key: list[str]) -> pd.DataFrame:
    """The latest run of each cell as a record (RECORD_COLUMNS); the run fields ``column_key``
    (``method``, or a parameter such as ``feedback.flip_prob``) name its table column."""
    runs = runs.assign(cell=_field(runs, "tags.cell_id", runs.run_id))
    runs = runs.sort_values("start_time", kind="stable").drop_duplicates("cell", keep="last")
    parts, labels = [], []
    for key in column_key:
        if key == "method":
            method = _field(runs, "tags.method", "")
            label = _field(runs, "tags.method_label", method)
            parts.append(method)
            labels.append(label.where(label != "", method))
        else:
            parts.append(_field(runs, f"params.{key}", "?"))
            labels.append(f"{key.split('.')[-1]}=" + parts[-1])
    unfinished = runs.state.map({"FAILED": "failed"}).fillna("running")
    return pd.DataFrame({
        "dataset": _field(runs, "tags.dataset", "?"),
        "column": pd.concat(parts, axis=1).agg("/".join, axis=1),
        "label": pd.concat(labels, axis=1).agg(" ".join, axis=1),
        "lr_scale": runs["params.lr_scale"].astype(float),
        "seed": runs["params.seed"].astype(int),
        "status": _field(runs, "tags.status", "done").where(runs.state == "FINISHED", unfinished),
        "best": _field(runs, "metrics.best_val_error", float("nan")).astype(float),
        "run_id": runs.run_id,
        "code_version": _field(runs, "tags.code_version", "?"),
    }).reset_index(drop=True)


def fetch_records(uri: str, grid: str, column_key: list[str]) -> pd.DataFrame:
    """The grid's runs from MLflow, latest per cell, as records (RECORD_COLUMNS)."""
    return to_records(fetch_runs(uri, grid), column_key)
