"""bpgrid/grid.py: a grid's axes crossed as Hydra's basic sweeper crosses them, the sweep's
settings, and cells composed once per structure that equal cells composed one by one."""

import re
from pathlib import Path

import pytest
from composing import compose_config, local_overrides

from bpgrid import grid as grid_module
from bpgrid.config import ConfigError, to_dict
from bpgrid.grid import compose_cells, expand, load_grid

REPO = Path(__file__).resolve().parent.parent


def test_axes_cross_in_order_of_first_mention_and_a_later_line_replaces_an_axis():
    jobs = expand(["method=sgd,bm", "lr_scale=1,10", "+grid=quick", "method=usf",
                   "seed=range(0,2)"])
    assert jobs == [["method=usf", "lr_scale=1", "+grid=quick", "seed=0"],
                    ["method=usf", "lr_scale=1", "+grid=quick", "seed=1"],
                    ["method=usf", "lr_scale=10", "+grid=quick", "seed=0"],
                    ["method=usf", "lr_scale=10", "+grid=quick", "seed=1"]]


def test_an_interval_or_a_sweep_over_the_sweeps_own_settings_is_an_error():
    with pytest.raises(ConfigError, match=r"lr_scale=interval\(0,1\): an axis lists its values"):
        expand(["lr_scale=interval(0,1)"])
    with pytest.raises(ConfigError, match="hydra.launcher.workers=1,2: a sweep's own settings"):
        expand(["hydra.launcher.workers=1,2"])


def test_the_grid_files_axes_the_launcher_and_the_dated_folder():
    grid = load_grid(["+grid=quick", "dataset=glob(mnist*)", "hydra/launcher=slurm",
                      "hydra.launcher.partition=gpu"])
    assert grid.name == "quick" and not grid.dry_run
    assert len(grid.jobs) == 11 * 2 * 5
    assert {job[1] for job in grid.jobs} == {"dataset=mnist", "dataset=mnist1d"}
    assert grid.launcher["name"] == "slurm" and grid.launcher["partition"] == "gpu"
    assert re.fullmatch(r"multirun/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d", str(grid.folder))
    assert grid.shown(grid.jobs[0]) == "method=sgd dataset=mnist lr_scale=100 +grid=quick"


def test_cells_sharing_a_composition_equal_cells_composed_alone(tmp_path, monkeypatch):
    argv = ["+grid=quick", *local_overrides(tmp_path), f"hydra.sweep.dir={tmp_path}/s1",
            "method=sgd,usf_bn_bm", "dataset=digits", "lr_scale=1,10", "grid.name=a,b"]
    grid = load_grid(argv)
    composed = []
    real = grid_module.compose
    monkeypatch.setattr(grid_module, "compose",
                        lambda *args, **kw: composed.append(args) or real(*args, **kw))
    cells = compose_cells(grid)
    assert len(cells) == 8 and len(composed) == 2  # one per method
    for cell, job in zip(cells, grid.jobs, strict=True):
        alone = to_dict(compose_config(job, config_name="sweep"))
        assert cell == {**alone, "grid": {**alone["grid"], "sweep_id": grid.sweep_id}}
    assert {(c["grid"]["name"], c["tracking"]["experiment"]) for c in cells} == {
        ("a", "a"), ("b", "b")}  # an interpolation follows the value set


def test_a_typo_in_an_axis_key_is_an_error_not_a_new_key():
    grid = load_grid(["+grid=quick", "method=sgd", "dataset=digits", "lr_scal=1,10"])
    with pytest.raises(ConfigError, match="could not override 'lr_scal=1'"):
        compose_cells(grid)


def test_bpgrid_uses_only_hydras_public_api():
    private = [p.name for p in (REPO / "bpgrid").rglob("*.py") if "hydra._internal" in
               p.read_text()]
    assert private == []
