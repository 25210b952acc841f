"""bpgrid/report/build.py: a grid's report made from its config and the runs of its cells, in
whichever experiment they are."""

from types import SimpleNamespace

import pandas as pd
import pytest
from synthetic_runs import write_cell_run

from bpgrid.report.build import baseline_argv, make_report
from bpgrid.report.cells import compose_grid
from bpgrid.report.records import ReportError

MNIST_AT_1 = ["dataset=mnist", "lr_scale=1"]


def quiet(_: str) -> None:
    pass


def configs(*argv: str) -> dict[str, dict]:
    """The composed cells of a grid, by their column (one config per column)."""
    from bpgrid.grid import compose_cells, load_grid
    from bpgrid.report.cells import column_of
    grid = load_grid(list(argv))
    key = list(grid.config.grid.column_key)
    return {column_of(c, key)[0]: c for c in compose_cells(grid)}


def table_of(folder) -> dict:
    """(dataset, column) -> the row of table.csv, as attributes."""
    frame = pd.read_csv(folder / "table.csv", dtype=str, keep_default_na=False)
    return {(r["dataset"], r["column"]): SimpleNamespace(**{
        **r, "error": float(r["error"]) if r["error"] else None, "runs": int(r["runs"])})
        for r in frame.to_dict("records")}


def report(tmp_path, *argv: str):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return make_report([*argv, f"tracking.uri={uri}", f"report.out_dir={tmp_path}/reports"],
                       quiet, plots=False)


def test_every_cell_of_the_grid_is_a_row_and_column_even_if_it_never_started(tmp_path):
    cells = configs("+grid=quick", "dataset=digits", "method=sgd,usf", "lr_scale=1")
    write_cell_run(f"sqlite:///{tmp_path}/mlflow.db", cells["sgd"], best=2.0)
    folder = report(tmp_path, "+grid=quick", "dataset=digits,mnist1d", "method=sgd,bm,usf",
                    "lr_scale=1,10")
    table = table_of(folder)
    assert sorted(table) == sorted((d, m) for d in ("digits", "mnist1d")
                                   for m in ("sgd", "bm", "usf"))
    assert (table["digits", "sgd"].error, table["digits", "sgd"].marks) == (2.0, "*")
    assert {t.status for k, t in table.items() if k != ("digits", "sgd")} == {"missing"}
    text = (folder / "table.md").read_text()
    assert "| digits | 2.00* | *missing* | *missing* |" in text
    assert "| MNIST-1D | *missing* | *missing* | *missing* |" in text
    readme = (folder / "README.md").read_text()
    assert "the grid defines 12 cells; 1 have a run" in readme


def test_runs_outside_the_grid_are_not_its_cells(tmp_path):
    """A run at an LR scale the grid does not ask for (here the lowest error of all) is not
    in its table, and the grid's own cells, all done, are not partial."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for scale in ("1", "10", "100"):
        write_cell_run(uri, configs("+grid=quick", "dataset=digits", "method=sgd",
                                    f"lr_scale={scale}")["sgd"], best=5.0 - float(scale) / 100)
    write_cell_run(uri, configs("+grid=quick", "dataset=mnist1d", "method=sgd",
                                "lr_scale=1000")["sgd"], best=0.1)
    for scale in ("1", "10", "100"):
        write_cell_run(uri, configs("+grid=quick", "dataset=mnist1d", "method=sgd",
                                    f"lr_scale={scale}")["sgd"], best=30.0)
    table = table_of(report(tmp_path, "+grid=quick", "method=sgd", "lr_scale=1,10,100"))
    assert (table["digits", "sgd"].error, table["digits", "sgd"].marks) == (4.0, "†")
    assert (table["mnist1d", "sgd"].error, table["mnist1d", "sgd"].marks) == (30.0, "†")
    assert table["mnist1d", "sgd"].runs == 3


def test_a_cell_another_grid_ran_is_shown_in_every_grid_holding_it(tmp_path):
    """experiment_c1 after experiment_a: its SGD, NuSF, BN and uSF+BN+BM columns are
    experiment_a's runs (same cell ids), coloured against its SGD."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    errors = {"sgd": 10.0, "nusf": 14.0, "bn": 6.0, "usf_bn_bm": 11.0, "bm": 50.0}
    for column, config in configs("+grid=experiment_a", *MNIST_AT_1).items():
        if column in errors:
            write_cell_run(uri, config, best=errors[column])
    c1 = configs("+grid=experiment_c1", *MNIST_AT_1)
    write_cell_run(uri, c1["rndf"], "FAILED")
    assert all(c1[m]["tracking"]["experiment"] == "experiment_c1" for m in c1)
    for grid in ("experiment_a", "experiment_c1"):
        table = table_of(report(tmp_path, f"+grid={grid}", *MNIST_AT_1))
        shown = {c: (t.error, t.colour) for (_, c), t in table.items() if t.status == "value"}
        assert shown["sgd"] == (10.0, "") and shown["nusf"] == (14.0, "worse")
        assert shown["bn"] == (6.0, "better") and shown["usf_bn_bm"] == (11.0, "")
    assert table["mnist", "rndf"].status == "failed"
    assert table["mnist", "rndf_bn"].status == "missing" and ("mnist", "bm") not in table
    readme = (tmp_path / "reports/experiment_c1/README.md").read_text()
    assert "the runs found are in `experiment_a` (4), `experiment_c1` (1)" in readme


def test_runs_logged_to_the_experiment_tracking_experiment_names_are_found(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cells = configs("+grid=quick", "dataset=digits", "method=sgd", "lr_scale=1",
                    "tracking.experiment=my_study")
    assert cells["sgd"]["tracking"]["experiment"] == "my_study"
    write_cell_run(uri, cells["sgd"], best=3.0)
    folder = report(tmp_path, "+grid=quick", "dataset=digits", "method=sgd", "lr_scale=1",
                    "tracking.experiment=my_study")
    assert table_of(folder)["digits", "sgd"].error == 3.0
    readme = (folder / "README.md").read_text()
    assert "This grid logs to the experiment `my_study` (`tracking.experiment`); the runs " \
           "found are in `my_study` (1)" in readme


def test_the_baseline_column_comes_from_the_baseline_grid_with_the_same_rows(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    write_cell_run(uri, configs("+grid=experiment_a", *MNIST_AT_1, "method=sgd")["sgd"],
                   best=1.0)
    flips = configs("+grid=experiment_b", *MNIST_AT_1, "feedback.flip_prob=1.0,0.0")
    write_cell_run(uri, flips["brsf_bn_bm/1.0"], best=8.0)
    write_cell_run(uri, flips["brsf_bn_bm/0.0"], best=1.5)
    folder = report(tmp_path, "+grid=experiment_b", *MNIST_AT_1, "feedback.flip_prob=1.0,0.0")
    table = table_of(folder)
    assert list(table) == [("mnist", c) for c in ("sgd", "brsf_bn_bm/1.0", "brsf_bn_bm/0.0",
                                                  "frsf_bn_bm/1.0", "frsf_bn_bm/0.0")]
    assert (table["mnist", "sgd"].error, table["mnist", "sgd"].label) == (1.0, "SGD")
    assert table["mnist", "brsf_bn_bm/1.0"].colour == "worse"
    assert table["mnist", "brsf_bn_bm/0.0"].colour == ""
    assert "`sgd` (from the runs of grid experiment_a)" in (folder / "README.md").read_text()


def test_the_baseline_grid_takes_the_overrides_but_those_choosing_columns():
    argv = ["+grid=experiment_b", "dataset=mnist", "feedback.flip_prob=1.0,0.0", "seed=0,1",
            "method=brsf_bn_bm", "tracking.uri=sqlite:///m.db"]
    assert baseline_argv(argv, "experiment_a", ["method", "feedback.flip_prob"]) == [
        "+grid=experiment_a", "dataset=mnist", "seed=0,1", "tracking.uri=sqlite:///m.db"]
    compose_grid(baseline_argv(argv, "experiment_a", ["method", "feedback.flip_prob"]), quiet)


def test_a_grid_without_runs_or_with_an_unknown_baseline_is_a_clear_error(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    write_cell_run(uri, configs("+grid=quick", "dataset=digits", "method=bm",
                                "lr_scale=1")["bm"], best=3.0)
    with pytest.raises(ReportError, match="none of the 2 cells of grid quick has a run in "
                                          r".*mlflow.db; run `python -m bpgrid.sweep \+grid="):
        report(tmp_path, "+grid=quick", "dataset=digits", "method=sgd", "lr_scale=1,10")
    with pytest.raises(ReportError, match="report.baseline='sdg' is no column of grid quick; "
                                          "its columns: bm, sgd"):
        report(tmp_path, "+grid=quick", "dataset=digits", "method=sgd,bm", "lr_scale=1",
               "report.baseline=sdg")
