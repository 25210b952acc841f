"""MLflow records of cells, through an explicit client (no global active run).

One MLflow run per cell, tagged with its cell id (by which it is found) and named for people
(bpgrid/naming.py), in the grid's experiment; a sweep's cells are child runs of the sweep's run
(bpgrid/sweep_run.py). Per-epoch metrics have the epoch as their step. A resumed cell logs into
its existing run, which keeps its parent and takes the resuming sweep's tags. A run ends FINISHED
(the cell has a result), FAILED (with the error as a tag) or KILLED (its owner was stopped; a
rerun resumes into it).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

MAX_ERROR_TEXT = 5000
MAX_BATCH = 1000  # metrics in one log_batch call (MLflow's limit)
PARENT_TAG = "mlflow.parentRunId"  # MLflow's link from a child run to its parent
LOCK_RETRIES = 12


def _retry_locked(call, *args, **kwargs):
    """Call an MLflow client method, retrying while SQLite reports "database is locked".

    Parallel workers share one SQLite file; a write that meets another's lock waits and retries
    (0.1 s, doubling to 5 s) instead of losing the record.
    """
    delay = 0.1
    for attempt in range(LOCK_RETRIES):
        try:
            return call(*args, **kwargs)
        except Exception as err:
            if "database is locked" not in str(err) or attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 5.0)
    raise AssertionError("unreachable")


class _RetryingClient:
    """An MlflowClient whose every method retries on a locked SQLite database."""

    def __init__(self, uri: str):
        self._client = MlflowClient(uri)

    def __getattr__(self, name):
        method = getattr(self._client, name)
        return lambda *args, **kwargs: _retry_locked(method, *args, **kwargs)


def is_local_store(uri: str) -> bool:
    return uri.startswith("sqlite:") or "://" not in uri


def prepare_store(uri: str) -> None:
    """Create and migrate the store once (before parallel cells start using it).

    MLflow creates a fresh SQLite database's tables without a lock, so two sweeps starting at
    once on a new file race ("table experiments already exists"): the creation holds an flock on
    ``<db>.lock`` beside it (SQLite itself needs a local disk, so flock is sound there). A new
    database is made under another name and renamed into place once all its tables exist, so a
    process killed while making it leaves no half-made store behind."""
    if not uri.startswith("sqlite:///"):
        MlflowClient(uri).search_experiments(max_results=1)
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not db.exists() or db.stat().st_size == 0:
            fresh = db.with_name(db.name + ".new")
            fresh.unlink(missing_ok=True)
            MlflowClient(f"sqlite:///{fresh}").search_experiments(max_results=1)
            os.replace(fresh, db)
        MlflowClient(uri).search_experiments(max_results=1)


class Tracker:
    """The MLflow side of one cell."""

    def __init__(self, uri: str, experiment: str, artifacts: str | None = None):
        self.client = _RetryingClient(uri)
        self.experiment_id = self._experiment(experiment, uri, artifacts)

    def _experiment(self, name: str, uri: str, artifacts: str | None) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if artifacts and is_local_store(uri):
            root = Path(artifacts).resolve()
            folder = (root / name).resolve()
            if not folder.is_relative_to(root) or folder == root:
                raise ValueError(f"experiment {name!r} would put its artifacts outside "
                                 f"tracking.artifacts={artifacts}")
            location = folder.as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created meanwhile by a parallel cell
            return self.client.get_experiment_by_name(name).experiment_id

    def find_run(self, cell_id: str) -> str | None:
        """The newest run of this cell that did not finish (to resume into), if any."""
        runs = self.client.search_runs(
            [self.experiment_id], f"tags.cell_id = '{cell_id}'",
            order_by=["attributes.start_time DESC"], max_results=10)
        unfinished = [r for r in runs if r.info.status != "FINISHED"]
        return unfinished[0].info.run_id if unfinished else None

    def start(self, cell_id: str, params: Mapping[str, str], tags: Mapping[str, str],
              run_id: str | None = None, *, name: str | None = None,
              parent: str | None = None) -> str:
        """The run to log into: ``run_id``, an unfinished run of the cell (given ``tags``, the
        latest sweep's), or a new one named ``name`` (the cell id by default), a child of the
        run ``parent`` when given."""
        run_id = run_id or self.find_run(cell_id)
        if run_id is None:
            family = {PARENT_TAG: parent} if parent else {}
            run = self.client.create_run(self.experiment_id, run_name=name or cell_id,
                                         tags={"cell_id": cell_id, **tags, **family})
            run_id = run.info.run_id
            self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        else:
            self.client.update_run(run_id, status="RUNNING")
            self.set_tags(run_id, {k: v for k, v in tags.items() if v})
        return run_id

    def logged_epochs(self, run_id: str, key: str = "val_error") -> set[int]:
        return {m.step for m in self.client.get_metric_history(run_id, key)}

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int,
                    tags: Mapping[str, str] | None = None) -> None:
        """The metrics of one step (and tags) in one write."""
        self.log_epochs(run_id, [], metrics, step, tags)

    def log_epochs(self, run_id: str, epochs: Sequence[Mapping[str, float]],
                   final: Mapping[str, float] | None = None, step: int = 0,
                   tags: Mapping[str, str] | None = None) -> None:
        """Epochs' metrics (each epoch its step), and ``final`` metrics at ``step`` and tags, in
        one write (a write per MAX_BATCH metrics)."""
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(e["epoch"])) for e in epochs
                   for k, v in e.items() if k != "epoch"]
        metrics += [Metric(k, float(v), now, step) for k, v in (final or {}).items()]
        tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for i in range(0, max(len(metrics), 1), MAX_BATCH):
            self.client.log_batch(run_id, metrics=metrics[i:i + MAX_BATCH],
                                  tags=tags if i == 0 else [])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.client.log_artifact(run_id, str(path))

    def finish(self, run_id: str) -> None:
        self.client.set_terminated(run_id, "FINISHED")

    def close(self, run_id: str) -> None:
        """End the run FINISHED unless it is (a cell whose result was stored before its run was
        ended, by a kill in between)."""
        if self.client.get_run(run_id).info.status != "FINISHED":
            self.finish(run_id)

    def fail(self, run_id: str, error: str) -> None:
        self.set_tags(run_id, {"error": error[-MAX_ERROR_TEXT:]})
        self.client.set_terminated(run_id, "FAILED")

    def stop(self, run_id: str) -> None:
        """The run's owner was stopped (a signal, a lost lease): KILLED, to be resumed."""
        self.client.set_terminated(run_id, "KILLED")

    def retag(self, old: str, new: str) -> list[str]:
        """Runs of the cell id ``old`` become runs of ``new`` (keeping ``legacy_cell_id``)."""
        runs = self.client.search_runs([self.experiment_id], f"tags.cell_id = '{old}'",
                                       max_results=1000)
        for run in runs:
            self.set_tags(run.info.run_id, {"cell_id": new, "legacy_cell_id": old})
            if run.info.run_name == old:  # named by its id, as runs were then
                self.client.update_run(run.info.run_id, name=new)
        return [run.info.run_id for run in runs]

