"""A small grid through ``hydra/launcher=slurm`` on the real cluster, one cell cancelled."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from composing import local_overrides
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _running_array_tasks() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True,
                         text=True, check=True)
    return [line for line in out.stdout.split() if "_" in line]


def test_slurm_sweep_finishes_the_others_and_reports_the_cancelled_cell(tmp_path: Path,
                                                                       slurm_cluster):
    cmd = [sys.executable, "-m", "bpgrid.sweep", "+grid=quick", *local_overrides(tmp_path),
           f"hydra.sweep.dir={tmp_path}/multirun", "hydra/launcher=slurm",
           "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
           "hydra.launcher.timeout_min=10", "hydra.launcher.array_parallelism=1",
           "method=sgd,usf_bn_bm", "dataset=digits", "lr_scale=10,1", "schedule.epochs=40"]
    sweep, tasks = start_sweep(cmd, tmp_path)
    cancelled = tasks[0]
    subprocess.run(["scancel", cancelled], check=True)
    out, err = sweep.communicate(timeout=600)

    # two structures (SGD; uSF+BN+BM), so two fused arrays of two cells, one array per task
    assert "4 cells to run as 2 fused arrays of up to 2 cells" in err
    assert sweep.returncode == 1, err[-3000:]
    assert "sweep: 4 cells: 2 done, 0 skipped, 0 diverged, 2 failed" in out
    assert f"{cancelled.split('_')[0]}_" in out and ".err" in out  # the failed task's log
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = cell_runs(client)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 2  # the other array's cells, both of one method
    assert len({r.data.tags["method"] for r in finished}) == 1
    assert all(len(client.get_metric_history(r.info.run_id, "val_error")) == 40
               for r in finished)


def start_sweep(cmd: list[str], folder: Path) -> tuple[subprocess.Popen, list[str]]:
    """The sweep, started, once one of its array tasks runs; and the running tasks."""
    sweep = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 180
    while not (tasks := _running_array_tasks()):
        assert time.time() < deadline and sweep.poll() is None, "no array task started"
        time.sleep(0.5)
    return sweep, tasks


def cell_runs(client: MlflowClient) -> list:
    """The cells' runs (not the sweep's own parent runs)."""
    found = client.search_runs([client.get_experiment_by_name("quick").experiment_id])
    return [r for r in found if "cell_id" in r.data.tags]


def test_a_requeued_cell_resumes_from_its_checkpoint(tmp_path: Path, slurm_cluster):
    """Preemption, as SLURM does it: the running task is requeued and starts again; the cell
    continues from its last checkpoint into the same MLflow run."""
    cmd = [sys.executable, "-m", "bpgrid.sweep", "+grid=quick", *local_overrides(tmp_path),
           f"hydra.sweep.dir={tmp_path}/multirun", "hydra/launcher=slurm",
           "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
           "method=sgd", "dataset=digits", "lr_scale=10", "schedule.epochs=300"]
    sweep = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 180
    while not list((tmp_path / "cells").glob("*/checkpoint.pt")):
        assert time.time() < deadline and sweep.poll() is None, "the cell never checkpointed"
        time.sleep(0.2)
    job = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True,
                         text=True, check=True).stdout.split()[0]
    subprocess.run(["scontrol", "requeue", job], check=True)
    out, err = sweep.communicate(timeout=600)  # slurmctld holds a requeued job ~2 minutes

    assert sweep.returncode == 0, err[-3000:]
    assert "sweep: 1 cells: 1 done" in out
    result = json.loads(next((tmp_path / "cells").glob("*/result.json")).read_text())
    assert result["epochs_run"] == 300 and 1 <= result["resumed_from_epoch"] < 300
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = cell_runs(client)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "val_error")]
    assert sorted(steps) == list(range(1, 301))


def test_a_detached_sweep_leaves_its_array_running_and_a_rerun_follows_it(tmp_path: Path,
                                                                          slurm_cluster):
    """Ctrl-C after submission detaches: the array goes on, its cells stay owned (the queued
    one by the reservation the sweep made for its task). The same command again submits
    nothing, follows the jobs to their end and summarises both cells."""
    cmd = [sys.executable, "-m", "bpgrid.sweep", "+grid=quick", *local_overrides(tmp_path),
           f"hydra.sweep.dir={tmp_path}/multirun", "hydra/launcher=slurm",
           "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
           "hydra.launcher.array_parallelism=1", "method=sgd,usf_bn_bm", "dataset=digits",
           "lr_scale=10", "schedule.epochs=150"]  # two structures: two arrays, two tasks
    sweep, tasks = start_sweep(cmd, tmp_path)
    array = tasks[0].split("_")[0]
    sweep.send_signal(signal.SIGINT)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 128 + signal.SIGINT, err[-3000:]
    assert f"detached: SLURM array {array} goes on" in out and f"scancel {array}" in out
    queued = subprocess.run(["squeue", "-h", "-r", "-j", array, "-o", "%i %T"],
                            capture_output=True, text=True, check=True).stdout.split("\n")
    assert len([line for line in queued if line.strip()]) == 2  # both tasks still there
    leases = [json.loads(p.read_text()) for p in (tmp_path / "cells").glob("*/lease.json")]
    assert sorted(h["job_id"] for h in leases) == [f"{array}_0", f"{array}_1"]

    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "2 cells, 0 already finished, 2 owned by live jobs (running), 0 to run" in rerun.stderr
    assert "following 2 SLURM jobs" in rerun.stderr
    assert "submitted as SLURM array" not in rerun.stderr
    assert "sweep: 2 cells: 2 done, 0 skipped, 0 diverged, 0 failed" in rerun.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = cell_runs(client)
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_error")]
        assert sorted(steps) == list(range(1, 151))
