"""bpgrid/report/cells.py: a grid's cells from its config, with their ids, columns and factors."""

import pytest
from composing import CONF, compose_config
from omegaconf import OmegaConf

from bpgrid.config import cell_id
from bpgrid.report.cells import cell_frame, column_of, compose_grid

GRIDS = sorted(p.stem for p in (CONF / "grid").glob("*.yaml"))


def quiet(_: str) -> None:
    pass


def test_every_factor_is_a_column_with_its_value_and_the_cell_id_is_the_cells():
    grid = compose_grid(["+grid=experiment_b", "dataset=mnist", "lr_scale=1,10",
                         "method=brsf_bn_bm"], quiet)
    cells = grid.cells.set_index(["column", "lr_scale"])
    assert grid.name == "experiment_b" and len(cells) == 5 * 2
    cell = cells.loc[("brsf_bn_bm/0.25", 10.0)]
    assert cell.label == "brSF+BN+BM flip_prob=0.25"
    assert (cell.method, cell.method_label, cell.dataset, cell.seed) == (
        "brsf_bn_bm", "brSF+BN+BM", "mnist", 0)
    assert (cell.model, cell.feedback, cell["feedback.flip_prob"], cell.norm) == (
        "liao_mnist", "brsf", 0.25, "bn")
    assert (cell.optimizer, cell["optimizer.setting"], cell.schedule) == ("bm", 1, "liao")
    assert (cell["schedule.epochs"], cell["schedule.lr_epochs"]) == (65, [1, 51, 61])
    alone = compose_config(["+grid=experiment_b", "dataset=mnist", "lr_scale=10",
                            "method=brsf_bn_bm", "feedback.flip_prob=0.25"], "sweep")
    assert cell.cell_id == cell_id(alone)


def test_a_column_names_the_method_or_the_column_keys_values():
    config = {"method": {"name": "sgd", "label": "SGD"}, "model": {"freeze": "bottom"},
              "feedback": {"layers": 2, "untied": ["conv2", "conv3"]}}
    assert column_of(config, ["method"]) == ("sgd", "SGD")
    assert column_of(config, ["method", "model.freeze"]) == ("sgd/bottom", "SGD freeze=bottom")
    assert column_of(config, ["feedback.layers", "feedback.untied"]) == (
        '2/["conv2", "conv3"]', 'layers=2 untied=["conv2", "conv3"]')
    assert column_of(config, ["feedback.flip_prob"]) == ("?", "flip_prob=?")


def test_a_method_preset_reports_in_the_column_its_name_gives():
    cells = compose_grid(["+grid=paper_mnist", "method=usf_bm,usf_bm_b500", "lr_scale=1"],
                         quiet).cells
    assert list(cells.column) == ["usf_bm", "usf_bm"]
    assert cells.cell_id.nunique() == 2
    assert [b[-1] for b in cells["schedule.batch_sizes"]] == [100, 500]


@pytest.mark.parametrize("name", GRIDS)
def test_a_grid_files_columns_are_the_columns_its_cells_report_in(name):
    """grid.columns orders the table; each is a column the grid's cells give (one dataset)."""
    grid_file = OmegaConf.load(CONF / "grid" / f"{name}.yaml")
    datasets = str(grid_file.hydra.sweeper.params.dataset).split(",")
    grid = compose_grid([f"+grid={name}", f"dataset={datasets[0]}", "lr_scale=1"], quiet)
    declared = list(grid_file.grid.get("columns", []))
    if declared:
        assert set(grid.cells.column) == set(declared)
        assert grid.columns == declared
    report = grid_file.get("report", {})
    baseline = report.get("baseline_grid")
    if baseline:  # the baseline column is that grid's
        grid = compose_grid([f"+grid={baseline}", f"dataset={datasets[0]}", "lr_scale=1"],
                            quiet)
    assert str(report.get("baseline", "sgd")) in set(grid.cells.column)


def test_no_cells_give_an_empty_frame():
    assert cell_frame([], ["method"]).empty
