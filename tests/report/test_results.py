"""``bpgrid.results``: a grid's cells and their runs as one DataFrame, every factor a column."""

import subprocess
import sys

import pandas as pd
import pytest
from synthetic_runs import write_cell_run

import bpgrid
from bpgrid.config import cell_id
from bpgrid.grid import compose_cells, load_grid

ARGV = ["dataset=digits", "method=sgd,bm", "lr_scale=1,10"]


@pytest.fixture
def store(workdir):
    """./mlflow.db (the default tracking.uri) with runs of 3 of the 4 cells of ARGV."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    cells = {(c["method"]["name"], c["lr_scale"]): c
             for c in compose_cells(load_grid(["+grid=quick", *ARGV]))}
    runs = {"sgd_1": write_cell_run(uri, cells["sgd", 1], best=2.0),
            "sgd_10": write_cell_run(uri, cells["sgd", 10], "FAILED"),
            "bm_1": write_cell_run(uri, cells["bm", 1], status="diverged", best=30.0)}
    return cells, runs


def test_one_row_per_cell_with_its_factors_status_and_errors(store):
    cells, runs = store
    frame = bpgrid.results("quick", overrides=ARGV)  # tracking.uri: sqlite:///mlflow.db
    assert len(frame) == 4 and frame.cell_id.is_unique
    assert list(frame.columns[:12]) == [
        "cell_id", "dataset", "column", "label", "method", "method_label", "lr_scale", "seed",
        "status", "best_val_error", "best_epoch", "final_val_error"]
    assert {"model", "feedback", "norm", "optimizer", "optimizer.momentum", "schedule",
            "schedule.epochs", "alignment", "run_id", "experiment", "code_version",
            "start_time"} <= set(frame.columns)
    rows = frame.set_index(["method", "lr_scale"])
    sgd = rows.loc["sgd", 1.0]
    assert sgd.cell_id == cell_id(cells["sgd", 1]) and sgd.run_id == runs["sgd_1"]
    assert (sgd.status, sgd.best_val_error, sgd.best_epoch, sgd.final_val_error) == (
        "done", 2.0, 2.0, 2.0)
    assert (sgd.dataset, sgd.column, sgd.label, sgd.method_label, sgd.seed) == (
        "digits", "sgd", "SGD", "SGD", 0)
    assert (sgd.model, sgd.feedback, sgd.norm, sgd.optimizer, sgd.schedule) == (
        "small_cnn", "bp", "none", "sgd", "liao")
    assert sgd["schedule.epochs"] == 10 and sgd.experiment == "quick"  # quick's 10 epochs
    assert (rows.loc["bm", 1.0].status, rows.loc["bm", 1.0].best_val_error) == ("diverged", 30.0)
    assert rows.loc["bm", 1.0].optimizer == "bm"
    failed = rows.loc["sgd", 10.0]
    assert failed.status == "failed" and pd.isna(failed.best_val_error)
    assert failed.final_val_error == 50.0  # the last epoch it logged
    missing = rows.loc["bm", 10.0]
    assert missing.status == "missing" and pd.isna(missing.run_id)


def test_learning_curves_on_request(store, tmp_path):
    _, runs = store
    assert "curve" not in bpgrid.results("quick", f"sqlite:///{tmp_path}/mlflow.db",
                                         overrides=ARGV)
    frame = bpgrid.results("quick", f"sqlite:///{tmp_path}/mlflow.db", overrides=ARGV,
                           curves=True).set_index("run_id", drop=False)
    curve = frame.loc[runs["sgd_1"], "curve"]
    assert curve.index.tolist() == [1, 2] and curve.index.name == "epoch"
    assert curve.to_dict("list") == {"train_loss": [2.0, 1.0], "val_error": [50.0, 2.0]}
    assert frame.loc[runs["sgd_10"], "curve"].val_error.tolist() == [50.0]
    assert frame[frame.status == "missing"].curve.tolist() == [None]


def test_import_bpgrid_stays_light_and_results_comes_on_use():
    code = ("import sys, bpgrid; heavy = {'pandas', 'mlflow', 'hydra'} & set(sys.modules); "
            "print(sorted(heavy), bpgrid.results.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["[]", "bpgrid.report.results"]
    with pytest.raises(AttributeError, match="no attribute 'resluts'"):
        bpgrid.resluts  # noqa: B018


def test_runs_written_before_readable_names_still_load(workdir):
    """A store of old-style runs (named by the cell id, ``lr_scale`` as ``1.0``, the epoch a
    metric of its own) beside a new-style run: both are found, with their curves."""
    from bpgrid.config import flat_params
    from bpgrid.tracking import Tracker

    uri = f"sqlite:///{workdir}/mlflow.db"
    cells = {(c["method"]["name"], c["lr_scale"]): c
             for c in compose_cells(load_grid(["+grid=quick", *ARGV]))}
    old_cell = cells["sgd", 1]
    tracker = Tracker(uri, "quick")
    old = tracker.start(cell_id(old_cell), {**flat_params(old_cell), "lr_scale": "1.0"},
                        {"grid": "quick", "method": "sgd", "dataset": "digits"})
    for epoch, error in ((1, 40.0), (2, 30.0)):
        tracker.log_metrics(old, {"epoch": epoch, "val_error": error, "train_loss": 1.0}, epoch)
    tracker.log_metrics(old, {"best_val_error": 30.0, "best_epoch": 2}, 2)
    tracker.set_tags(old, {"status": "done"})
    tracker.finish(old)
    new = write_cell_run(uri, cells["bm", 10], best=20.0)
    assert tracker.client.get_run(old).info.run_name == cell_id(old_cell)
    assert tracker.client.get_run(new).info.run_name == "bm/digits/lr10/s0"
    frame = bpgrid.results("quick", uri, overrides=ARGV, curves=True).set_index("run_id")
    assert frame.loc[old, ["status", "best_val_error", "final_val_error"]].tolist() == [
        "done", 30.0, 30.0]
    assert frame.loc[new, ["status", "best_val_error"]].tolist() == ["done", 20.0]
    assert frame.loc[old, "curve"].to_dict("list") == {"train_loss": [1.0, 1.0],
                                                       "val_error": [40.0, 30.0]}
