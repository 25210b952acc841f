import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from composing import CONF, compose_config, local_overrides
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from bpgrid.config import cell_id, validate
from bpgrid.grid import expand
from bpgrid.sweep import main

REPO = Path(__file__).resolve().parent.parent
GRIDS = sorted(p.stem for p in (CONF / "grid").glob("*.yaml"))
DATASETS_15 = 15


def grid_jobs(name: str, *extra: str) -> list[list[str]]:
    """The job overrides the sweep makes of a grid: its params plus extra axes."""
    params = OmegaConf.load(CONF / "grid" / f"{name}.yaml").hydra.sweeper.params
    return expand([f"{k}={v}" for k, v in params.items()] + list(extra))


EXPECTED = {
    "experiment_a": 11 * DATASETS_15 * 5,
    "experiment_a_usf_bm_b500": DATASETS_15 * 5,
    "experiment_b": 2 * 5 * DATASETS_15 * 5,
    "experiment_c1": 8 * DATASETS_15 * 5,
    "experiment_c2": 4 * 2 * DATASETS_15 * 5,
    "bm_settings": 8 * DATASETS_15 * 5,
    "report_dense": 3 * 2 * 2 * 5,
    "report_deep": 3 * 3 * 2 * 5,
    "report_pg": 3 * 2 * 2 * 5,
    "report_pg_tanh": 3 * 2 * 5,
    "report_untied": 2 * 3 * 2 * 5,
    "report_fixed_first": 2 * 3 * 2 * 2 * 5,
    "report_clip": 2 * 5,
    "quick": 11 * 2 * 5,
    "beyond": 7 * 3 * 5,
    # Tables 2-4 on MNIST, shared cells once: Table 2's 11 + uSF+BM's batch-500 procedure,
    # Table 3's 8 flipped columns, Table 4 C1's 4 RndF columns and C2's 8 frozen ones
    "paper_mnist": (11 + 1 + 8 + 4 + 8) * 5,
}


def test_every_grid_has_an_expected_size():
    assert set(GRIDS) == set(EXPECTED)


def test_experiment_a_is_table_2_on_15_datasets_at_5_scales():
    assert len(grid_jobs("experiment_a")) == 825


@pytest.mark.parametrize("name", GRIDS)
def test_grid_cell_count_and_its_cells_compose_and_validate(name):
    jobs = grid_jobs(name)
    assert len(jobs) == EXPECTED[name]
    for job in (jobs[0], jobs[len(jobs) // 2], jobs[-1]):
        cfg = compose_config([f"+grid={name}", *job], config_name="sweep")
        validate(cfg)
        assert cfg.grid.name == name


def test_an_axis_can_be_overridden_from_the_command_line():
    jobs = grid_jobs("experiment_a", "dataset=digits,mnist1d", "seed=0,1,2")
    assert len(jobs) == 11 * 2 * 5 * 3


def test_grid_files_hold_no_launcher_keys():
    for name in GRIDS:
        text = (CONF / "grid" / f"{name}.yaml").read_text()
        assert "launcher" not in text, name


# ----------------------------------------------------------------------------- end to end

def sweep_cmd(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bpgrid.sweep", "+grid=quick", *local_overrides(root),
            f"hydra.sweep.dir={root}/multirun", *args]


def quick_runs(root: Path, uri: str | None = None) -> list:
    client = MlflowClient(uri or f"sqlite:///{root}/mlflow.db")
    exp = client.get_experiment_by_name("quick")
    return client.search_runs([exp.experiment_id], max_results=5000) if exp else []


def runs_by_cell(root: Path, uri: str | None = None) -> dict[str, list]:
    """The cells' runs (a sweep's own run has no cell id), in the store at ``uri`` (default:
    the SQLite file in ``root``)."""
    out: dict[str, list] = {}
    for run in quick_runs(root, uri):
        if "cell_id" in run.data.tags:
            out.setdefault(run.data.tags["cell_id"], []).append(run)
    return out


def expected_ids(root: Path, jobs: list[list[str]], *extra: str) -> set[str]:
    return {cell_id(compose_config([*local_overrides(root), "+grid=quick", *job, *extra],
                                   config_name="sweep")) for job in jobs}


@pytest.mark.slow
def test_quick_subset_runs_in_debug_and_local_with_one_run_per_cell(tmp_path):
    axes = ["method=sgd,usf_bn_bm,frsf_bn_bm", "lr_scale=10,1", "schedule.epochs=2"]
    done = subprocess.run(sweep_cmd(tmp_path, *axes, "hydra/launcher=local"), cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sweep: 12 cells: 12 done, 0 skipped, 0 diverged, 0 failed" in done.stdout
    runs = runs_by_cell(tmp_path)
    jobs = [[f"method={m}", f"dataset={d}", f"lr_scale={s}"] for m in ("sgd", "usf_bn_bm",
            "frsf_bn_bm") for d in ("digits", "mnist1d") for s in (10, 1)]
    assert set(runs) == expected_ids(tmp_path, jobs, "schedule.epochs=2")
    assert all(len(r) == 1 and r[0].info.status == "FINISHED" for r in runs.values())
    assert {r[0].data.tags["sweep_id"] for r in runs.values()} != {""}

    again = subprocess.run(sweep_cmd(tmp_path, *axes, "hydra/launcher=debug"), cwd=tmp_path,
                           capture_output=True, text=True, check=True)
    assert "12 cells: 0 done, 12 skipped" in again.stdout
    assert sum(len(r) for r in runs_by_cell(tmp_path).values()) == 12
    assert len(quick_runs(tmp_path)) == 13  # one sweep's run; a rerun with nothing to run: none


@pytest.mark.slow
def test_a_failing_cell_leaves_the_others_and_the_exit_code_says_so(tmp_path):
    args = ["method=sgd", "lr_scale=10", "dataset=digits", "schedule.epochs=1",
            "model.pretrained_first_layer=null,/nonexistent/first.pt", "hydra/launcher=local"]
    out = subprocess.run(sweep_cmd(tmp_path, *args), cwd=tmp_path, capture_output=True,
                         text=True)
    assert out.returncode == 1
    assert "2 cells: 1 done, 0 skipped, 0 diverged, 1 failed" in out.stdout
    assert "failed " in out.stdout and ".err" in out.stdout  # the worker's log path
    summary = json.loads(next((tmp_path / "multirun").glob("summary.json")).read_text())
    assert summary["counts"] == {"done": 1, "failed": 1}
    assert sorted(summary["statuses"].values()) == ["done", "failed"]
    swept = OmegaConf.load(tmp_path / "multirun" / "multirun.yaml")  # the sweep's own config
    assert swept.grid.name == "quick" and swept.hydra.launcher.name == "local"


def test_without_a_grid_the_sweep_prints_its_usage_and_help_prints_it_too(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("usage: python -m bpgrid.sweep +grid=NAME [overrides]; grids: ") == 1
    assert all(name in err for name in GRIDS)
    assert main(["+grid=quick", "--help"]) == 0  # asked for: on stdout, exit status 0
    out = capsys.readouterr().out
    assert out.count("usage: python -m bpgrid.sweep +grid=NAME [overrides]; grids: ") == 1
    assert all(name in out for name in GRIDS)


def test_bad_values_stop_the_sweep_before_anything_starts(tmp_path):
    out = subprocess.run(sweep_cmd(tmp_path, "feedback=brsf", "feedback.flip_prob=2",
                                   "hydra/launcher=debug"),
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0
    assert "flip_prob must lie in [0, 1], got 2" in out.stderr + out.stdout
    assert not (tmp_path / "cells").exists() and not (tmp_path / "mlflow.db").exists()


def test_bad_launcher_mps_value_stops_the_sweep_before_anything_starts(tmp_path):
    out = subprocess.run(sweep_cmd(tmp_path, "method=sgd", "hydra/launcher=local",
                                   "hydra.launcher.mps=sometimes"),
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0
    assert "hydra.launcher.mps='sometimes' is not valid" in out.stderr
    assert not (tmp_path / "cells").exists() and not (tmp_path / "mlflow.db").exists()


def test_dry_run_counts_without_launching(tmp_path):
    out = subprocess.run(sweep_cmd(tmp_path, "grid.dry_run=true"), cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert "grid quick: 110 cells (dry run, nothing launched)" in out.stdout
    assert not (tmp_path / "cells").exists()


def stored(path: Path) -> dict:
    """A cell's stored result, less ``run_ended``: a kill between storing the result and ending
    its run leaves the run to be ended (and the result rewritten) by the next sweep's survey."""
    return {k: v for k, v in json.loads(path.read_text()).items() if k != "run_ended"}


@pytest.mark.slow
def test_killed_sweep_rerun_finishes_every_cell_once(tmp_path):
    axes = ["method=sgd,bm,usf_bn_bm,frsf_bn_bm", "lr_scale=10,1", "schedule.epochs=15",
            "hydra/launcher=local"]
    proc = subprocess.Popen(sweep_cmd(tmp_path, *axes), cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    results = tmp_path / "cells"
    while time.time() < deadline and len(list(results.glob("*/result.json"))) < 3:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers
    proc.wait()
    finished = {p.parent.name: stored(p) for p in results.glob("*/result.json")}
    assert 3 <= len(finished) < 16, "the sweep must be killed mid-way"
    rerun = subprocess.run(sweep_cmd(tmp_path, *axes), cwd=tmp_path, capture_output=True,
                           text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(finished)} skipped" in rerun.stdout
    runs = runs_by_cell(tmp_path)
    assert len(runs) == 16 and all(len(r) == 1 for r in runs.values())
    assert all(r[0].info.status == "FINISHED" for r in runs.values())
    for cid, result in finished.items():  # finished cells were not retrained
        assert stored(results / cid / "result.json") == result


def test_missing_dataset_files_stop_the_sweep_before_any_cell_runs(tmp_path):
    out = subprocess.run(sweep_cmd(tmp_path, "dataset=mnist", f"dataset.root={tmp_path}/none",
                                   "method=sgd", "lr_scale=1", "hydra/launcher=debug"),
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2
    assert f"mnist: no files at {tmp_path}/none; expected {tmp_path}/none/MNIST/raw/" in out.stderr
    assert "dataset.download=true" in out.stderr
    assert not (tmp_path / "cells").exists() and not (tmp_path / "mlflow.db").exists()
