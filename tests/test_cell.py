import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from composing import compose_config, local_overrides
from mlflow.tracking import MlflowClient

from bpgrid.cell import run_cell
from bpgrid.config import cell_id, to_dict

REPO = Path(__file__).resolve().parent.parent


def cfg_in(root: Path, *overrides: str):
    return compose_config([*local_overrides(root), "dataset=digits", *overrides])


def client(root: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{root}/mlflow.db")


def history(root: Path, run_id: str, key: str = "val_error") -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client(root).get_metric_history(run_id, key))


def test_digits_cell_records_params_metrics_tags_and_artifacts(workdir):
    cfg = cfg_in(workdir, "method=usf_bn_bm", "lr_scale=100", "schedule.epochs=3",
                 "grid.name=unit", "alignment=true")
    result = run_cell(cfg)
    assert result.status == "done" and result.epochs_run == 3 and not result.cached
    assert result.cell_id == cell_id(cfg) and result.resumed_from_epoch is None

    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    try:
        runs = mlflow.search_runs(experiment_names=["unit"], output_format="list")
    finally:
        mlflow.set_tracking_uri(None)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == result.cell_id and run.info.status == "FINISHED"
    p, t, m = run.data.params, run.data.tags, run.data.metrics
    assert (p["feedback.name"], p["norm.name"], p["optimizer.name"], p["optimizer.setting"]) \
        == ("usf", "bn", "bm", "1")
    assert p["lr_scale"] == "100.0" and p["dataset.name"] == "digits" and p["seed"] == "0"
    assert (t["grid"], t["method"], t["method_label"], t["dataset"], t["status"]) == \
        ("unit", "usf_bn_bm", "uSF+BN+BM", "digits", "done")
    assert t["code_version"] and t["cell_id"] == result.cell_id
    assert m["best_val_error"] == pytest.approx(result.best_val_error)
    assert m["best_epoch"] == result.best_epoch and m["diverged"] == 0
    val = history(workdir, run.info.run_id)
    assert [s for s, _ in val] == [1, 2, 3]
    assert min(v for _, v in val) == pytest.approx(result.best_val_error)
    for key in ("train_loss", "train_error", "lr", "epoch_time", "grad_angle/conv2"):
        assert len(history(workdir, run.info.run_id, key)) == 3, key
    assert history(workdir, run.info.run_id, "lr")[0][1] == pytest.approx(5e-4 * 100)
    artifacts = {a.path for a in client(workdir).list_artifacts(run.info.run_id)}
    assert artifacts == {"config.yaml", "learning_curve.png"}


def test_finished_cell_returns_its_result_without_training(workdir):
    cfg = cfg_in(workdir, "schedule.epochs=2")
    first = run_cell(cfg)
    again = run_cell(cfg)
    assert again.cached and again.best_val_error == first.best_val_error
    exp = client(workdir).get_experiment_by_name("adhoc")
    assert len(client(workdir).search_runs([exp.experiment_id])) == 1


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    a = run_cell(cfg_in(tmp_path / "a", "method=brsf_bn_bm", "schedule.epochs=3"))
    b = run_cell(cfg_in(tmp_path / "b", "method=brsf_bn_bm", "schedule.epochs=3"))
    assert history(tmp_path / "a", a.run_id) == history(tmp_path / "b", b.run_id)
    assert history(tmp_path / "a", a.run_id, "train_loss") == \
        history(tmp_path / "b", b.run_id, "train_loss")


def test_divergence_is_a_result_keeping_the_best_error_so_far(workdir):
    result = run_cell(cfg_in(workdir, "dataset=teacher_linear", "feedback=usf",
                             "lr_scale=1e4", "schedule.epochs=30"))
    assert result.status == "diverged" and result.epochs_run < 30
    assert result.best_epoch == 1 and result.best_val_error > 0
    assert result.final_val_error is None
    run = client(workdir).get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["diverged"] == 1

    # killed after its last checkpoint but before its result: a restart trains no further
    (Path(result.cell_dir) / "result.json").unlink()
    again = run_cell(cfg_in(workdir, "dataset=teacher_linear", "feedback=usf",
                            "lr_scale=1e4", "schedule.epochs=30"))
    assert again.status == "diverged" and again.epochs_run == result.epochs_run
    assert again.best_val_error == result.best_val_error


def test_failure_marks_the_run_failed_with_the_error_and_writes_no_result(workdir):
    result = run_cell(cfg_in(workdir, "dataset=mnist", f"dataset.root={workdir}/none"))
    assert result.status == "failed" and "FileNotFoundError" in result.error
    run = client(workdir).get_run(result.run_id)
    assert run.info.status == "FAILED"
    assert f"{workdir}/none" in run.data.tags["error"]
    assert not (Path(result.cell_dir) / "result.json").exists()


def _train_cmd(root: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "bpgrid.train", *local_overrides(root), "dataset=digits",
            *overrides]


@pytest.mark.slow
def test_killed_cell_resumes_to_exactly_the_uninterrupted_metrics(tmp_path):
    overrides = ["method=brsf_bn_bm", "lr_scale=10", "schedule.epochs=60"]
    killed = tmp_path / "killed"
    checkpoint = killed / "cells" / cell_id(cfg_in(killed, *overrides)) / "checkpoint.pt"
    proc = subprocess.Popen(_train_cmd(killed, *overrides), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the cell ended before it could be killed"

    resumed = subprocess.run(_train_cmd(killed, *overrides), cwd=REPO, capture_output=True,
                             text=True, check=True)
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["status"] == "done" and 1 <= result["resumed_from_epoch"] < 60

    reference = run_cell(cfg_in(tmp_path / "whole", *overrides))
    for key in ("val_error", "train_loss", "train_error"):
        assert history(killed, result["run_id"], key) == \
            history(tmp_path / "whole", reference.run_id, key), key
    assert result["best_val_error"] == reference.best_val_error

    again = subprocess.run(_train_cmd(killed, *overrides), cwd=REPO, capture_output=True,
                           text=True, check=True)
    assert json.loads(again.stdout.strip().splitlines()[-1])["cached"] is True
    exp = client(killed).get_experiment_by_name("adhoc")
    assert len(client(killed).search_runs([exp.experiment_id])) == 1


def test_results_identical_with_and_without_the_in_memory_fast_path(tmp_path):
    """The fast path (dataset as device tensors, index batches) against streaming batches
    through a DataLoader (forced by a memory budget of 0)."""
    fast = run_cell(cfg_in(tmp_path / "fast", "method=brsf_bn_bm", "schedule.epochs=3"))
    slow = run_cell(cfg_in(tmp_path / "slow", "method=brsf_bn_bm", "schedule.epochs=3",
                           "max_memory_mb=0"))
    assert fast.status == slow.status == "done"
    for key in ("val_error", "train_loss", "train_error"):
        assert history(tmp_path / "fast", fast.run_id, key) == \
            history(tmp_path / "slow", slow.run_id, key), key


def test_evaluation_counts_every_test_sample_even_a_lone_last_one(tmp_path):
    """1001 test samples at evaluation batches of 1000: the last one must be scored too."""
    import torch

    from bpgrid.data import DatasetSplits, Split
    from bpgrid.trainer import Trainer

    x, y = torch.zeros(1001, 1, 8, 8), torch.zeros(1001, dtype=torch.long)
    y[-1] = 1  # every sample is class 0 but the last
    data = DatasetSplits("lone", Split(x, y), Split(x, y), 2, (1, 8, 8), "classification", {})
    trainer = Trainer([to_dict(cfg_in(tmp_path))], data)
    with torch.no_grad():
        for p in trainer.net.parameters():
            p.zero_()
        trainer.net[-1].bias[0, 0] = 1.0  # the one member predicts class 0 for every input
    assert trainer.evaluate() == [pytest.approx(100.0 / 1001)]
