"""bpgrid/report/records.py: each cell's latest run, found by its cell id in any experiment."""

import pandas as pd
import pytest
from synthetic_runs import grid_cells, name, write_store

from bpgrid.report.records import (
    RECORD_COLUMNS,
    ReportError,
    check_store,
    fetch_runs,
    to_records,
    with_runs,
)
from bpgrid.tracking import Tracker


def test_runs_are_found_by_cell_id_in_every_experiment_with_their_status(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    write_store(uri, "one", [("mnist", "sgd", 0, 1, "FINISHED", "done", 1.0),
                             ("mnist", "sgd", 0, 10, "FINISHED", "diverged", 7.0),
                             ("mnist", "nusf", 0, 1, "FAILED", None, None),
                             ("cifar10", "sgd", 0, 1, "FINISHED", "done", 30.0)])
    write_store(uri, "two", [("mnist", "nusf", 0, 10, "RUNNING", None, None),
                             ("mnist", "usf_bn_bm", 0, 1, "KILLED", None, None)])
    tracker = Tracker(uri, "two")
    tracker.client.set_terminated(tracker.find_run(name("mnist", "usf_bn_bm", 0, 1)), "KILLED")
    wanted = [name("mnist", m, 0, s) for m, s in
              [("sgd", 1), ("sgd", 10), ("nusf", 1), ("nusf", 10), ("usf_bn_bm", 1)]]
    runs = fetch_runs(uri, [*wanted, "never-ran"]).set_index("cell_id")
    assert sorted(runs.index) == sorted(wanted)  # CIFAR10's run is no cell asked for
    assert runs.status.to_dict() == dict(zip(wanted, ["done", "diverged", "failed", "running",
                                                      "failed"], strict=True))
    assert runs.experiment.to_dict()[wanted[3]] == "two"
    sgd = runs.loc[wanted[0]]
    assert (sgd.best_val_error, sgd.best_epoch, sgd.final_val_error) == (1.0, 2.0, 1.0)
    assert pd.isna(runs.loc[wanted[2], "best_val_error"])
    assert runs.loc[wanted[2], "final_val_error"] == 50.0  # its last logged epoch


def test_the_latest_run_of_a_cell_wins_and_a_cell_without_one_is_missing():
    cells = grid_cells([("mnist", "sgd", 0, 1), ("mnist", "sgd", 0, 10)])
    runs = pd.DataFrame({
        "cell_id": [name("mnist", "sgd", 0, 1)] * 2, "run_id": ["new", "old"],
        "experiment": ["b", "a"], "start_time": pd.to_datetime([2, 1], unit="s", utc=True),
        "status": ["done", "failed"], "best_val_error": [0.7, float("nan")],
        "best_epoch": [3.0, float("nan")], "final_val_error": [0.8, 9.0],
        "code_version": ["v2", "v1"]})
    joined = with_runs(cells, runs)
    assert joined.run_id.tolist()[0] == "new" and pd.isna(joined.run_id.tolist()[1])
    assert joined.status.tolist() == ["done", "missing"]
    records = to_records(joined)
    assert list(records.columns) == RECORD_COLUMNS
    assert records.best.tolist()[0] == 0.7 and records.experiment.tolist()[0] == "b"


def test_a_store_that_does_not_exist_is_an_error_and_stays_uncreated(tmp_path):
    uri = f"sqlite:///{tmp_path}/none/mlflow.db"
    with pytest.raises(ReportError, match="no MLflow store at .*none/mlflow.db.*tracking.uri"):
        check_store(uri)
    with pytest.raises(ReportError):
        fetch_runs(uri, ["a"])
    assert not (tmp_path / "none").exists()
