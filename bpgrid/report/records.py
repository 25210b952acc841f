"""A grid's cells with their MLflow runs: each cell's latest run, found by its cell id in any
experiment of the store, so a cell that another grid ran shows in every grid that holds it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

RECORD_COLUMNS = ["cell_id", "dataset", "column", "label", "lr_scale", "seed", "status", "best",
                  "run_id", "experiment", "code_version"]
RUN_FIELDS = ["run_id", "experiment", "start_time", "status", "best_val_error", "best_epoch",
              "final_val_error", "code_version"]
# A cell's status from its run: FINISHED runs carry the cell's own (done | diverged) as a tag.
UNFINISHED = {"FAILED": "failed", "KILLED": "failed"}  # any other MLflow state: running
MISSING = "missing"  # a cell without a run


class ReportError(ValueError):
    """The runs cannot make the requested table; the message says why and what to do."""


def check_store(uri: str) -> None:
    """A SQLite store must exist: reading one that does not would create an empty file."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise ReportError(f"no MLflow store at {uri}; run the sweep first, or set "
                          f"tracking.uri=... to the store it wrote")


def _pages(search: Callable, **kwargs) -> Iterable:
    """Every item of a paged MLflow search."""
    token = None
    while True:
        page = search(page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


def fetch_runs(uri: str, cell_ids: Iterable[str]) -> pd.DataFrame:
    """Every run of these cells (its ``cell_id`` tag), in any experiment of the store: cell_id
    and RUN_FIELDS, the status as the table reads it (done | diverged | failed | running)."""
    check_store(uri)
    client = MlflowClient(uri)
    experiments = {e.experiment_id: e.name
                   for e in _pages(client.search_experiments, max_results=1000)}
    wanted = set(cell_ids)
    rows = []
    for run in _pages(client.search_runs, experiment_ids=list(experiments), max_results=50000):
        tags, metrics, state = run.data.tags, run.data.metrics, run.info.status
        if tags.get("cell_id") not in wanted:
            continue
        rows.append({
            "cell_id": tags["cell_id"], "run_id": run.info.run_id,
            "experiment": experiments[run.info.experiment_id],
            "start_time": pd.Timestamp(run.info.start_time or 0, unit="ms", tz="UTC"),
            "status": tags.get("status", "done") if state == "FINISHED"
            else UNFINISHED.get(state, "running"),
            "best_val_error": metrics.get("best_val_error", float("nan")),
            "best_epoch": metrics.get("best_epoch", float("nan")),
            "final_val_error": metrics.get("val_error", float("nan")),
            "code_version": tags.get("code_version", "?")})
    return pd.DataFrame(rows, columns=["cell_id", *RUN_FIELDS])


def with_runs(cells: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The cells (one row each, a ``cell_id`` column) with their latest run's RUN_FIELDS; a
    cell without a run has status ``missing`` and no run_id."""
    latest = (runs.sort_values("start_time", kind="stable")
              .drop_duplicates("cell_id", keep="last").set_index("cell_id"))
    joined = cells.join(latest[RUN_FIELDS], on="cell_id")
    joined["status"] = joined.status.fillna(MISSING)
    return joined


def to_records(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells with their runs (``with_runs``) as the table's records (RECORD_COLUMNS)."""
    return cells.rename(columns={"best_val_error": "best"})[RECORD_COLUMNS].reset_index(drop=True)


def metric_history(client: MlflowClient, run_id: str, keys: Iterable[str]) -> pd.DataFrame:
    """The run's metrics ``keys`` by epoch (their step), one column each; keys it never logged
    are left out."""
    history = {k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in keys}
    frame = pd.DataFrame({k: v for k, v in history.items() if v}, dtype=float)
    return frame.sort_index().rename_axis("epoch")
