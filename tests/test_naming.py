"""bpgrid/naming.py and config.value_text: run names and parameters as typed."""

import pytest
from composing import compose_config

from bpgrid.config import cell_id, flat_params, to_dict, value_text
from bpgrid.grid import compose_cells, load_grid
from bpgrid.naming import extras, name_runs, run_name, varying_keys


@pytest.mark.parametrize("value,text", [
    (100, "100"), (100.0, "100"), (0.25, "0.25"), (1e-3, "0.001"), (1e-5, "1e-05"),
    (1e6, "1000000"), (True, "true"), (None, "null"), ([1, 51, 61], "[1, 51, 61]"),
    ([5e-4, 5e-5], "[0.0005, 5e-05]"), ("usf", "usf"), (0, "0")])
def test_values_read_as_typed_in_one_canonical_form(value, text):
    assert value_text(value) == text


def test_params_hold_the_numbers_as_typed_and_the_id_is_unchanged():
    typed = compose_config(["lr_scale=100", "feedback=brsf", "feedback.flip_prob=0.25"])
    params = flat_params(typed)
    assert (params["lr_scale"], params["feedback.flip_prob"], params["alignment"]) == (
        "100", "0.25", "false")
    assert cell_id(typed) == cell_id(compose_config(
        ["lr_scale=100.0", "feedback=brsf", "feedback.flip_prob=0.25"]))
    assert flat_params(compose_config(["lr_scale=1e-3"]))["lr_scale"] == "0.001"


def test_a_name_says_method_dataset_scale_seed_and_overrides_of_the_method():
    c = to_dict(compose_config(["method=usf_bn_bm", "dataset=mnist1d", "lr_scale=10",
                                "seed=2"]))
    assert run_name(c) == "usf_bn_bm/mnist1d/lr10/s2"
    lines = ["method=usf_bn_bm", "feedback=brsf", "feedback.flip_prob=0.25", "optimizer=bm2",
             "schedule.epochs=3", "dataset.root=/data", "device=cpu", "lr_scale=1e-1",
             "hydra/launcher=local", "~norm"]
    assert extras(lines) == ["feedback=brsf", "feedback.flip_prob=0.25", "optimizer=bm2"]
    assert extras(lines, {"schedule.epochs", "dataset.root"}) == [
        "feedback=brsf", "feedback.flip_prob=0.25", "optimizer=bm2", "schedule.epochs=3"]
    assert run_name(c, ["optimizer=bm2"]) == "usf_bn_bm[optimizer=bm2]/mnist1d/lr10/s2"


def test_varying_keys_are_the_axes_of_more_than_one_value():
    jobs = [["method=sgd", "lr_scale=1", "+grid=quick"], ["method=sgd", "lr_scale=10",
                                                           "+grid=quick"]]
    assert varying_keys(jobs) == {"lr_scale"}


@pytest.mark.parametrize("argv", [["+grid=report_pg"],
                                  ["+grid=experiment_b", "dataset=mnist,cifar10"]])
def test_every_cell_of_a_grid_has_its_own_name(argv):
    grid = load_grid(argv)
    cells = compose_cells(grid)
    name_runs(cells, grid.jobs)
    names = {c["tracking"]["run_name"] for c in cells}
    assert len(names) == len({cell_id(c) for c in cells}) == len(cells)
    some = sorted(names)[0]
    assert some.count("/") == 3 and "lr" in some.split("/")[2], some

