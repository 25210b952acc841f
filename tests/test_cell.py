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
    assert run.info.run_name == "usf_bn_bm/digits/lr100/s0" and run.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in run.data.tags  # a cell run alone has no sweep
    p, t, m = run.data.params, run.data.tags, run.data.metrics
    assert (p["feedback.name"], p["norm.name"], p["optimizer.name"], p["optimizer.setting"]) \
        == ("usf", "bn", "bm", "1")
    assert p["lr_scale"] == "100" and p["dataset.name"] == "digits" and p["seed"] == "0"
    assert p["alignment"] == "true" and "epoch" not in m  # the epoch is the metrics' step
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
    assert artifacts == {"config.yaml"}  # learning curves are the report's (tests/report)


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
    """uSF without BN or BM on the linear teacher at LR x6000: the loss grows from 1.35x the
    chance level (epoch 1, the best) to over 1000x it in epoch 6, where the cell stops."""
    overrides = ["dataset=teacher_linear", "feedback=usf", "lr_scale=6e3", "schedule.epochs=30"]
    result = run_cell(cfg_in(workdir, *overrides))
    assert result.status == "diverged" and result.epochs_run == 6
    assert "more than 1000x the chance-level loss" in result.diverged_because
    assert result.best_epoch == 1 and 0 < result.best_val_error < 100
    losses = history(workdir, result.run_id, "train_loss")
    assert [s for s, _ in losses] == [1, 2, 3, 4, 5, 6]
    chance = float(result.diverged_because.rsplit(" ", 1)[1])
    assert losses[-2][1] < 1000 * chance < losses[-1][1]
    run = client(workdir).get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["diverged"] == 1
    assert run.data.tags["diverged_because"] == result.diverged_because

    # killed after its last checkpoint but before its result: a restart trains no further
    (Path(result.cell_dir) / "result.json").unlink()
    again = run_cell(cfg_in(workdir, *overrides))
    assert again.status == "diverged" and again.epochs_run == result.epochs_run
    assert again.best_val_error == result.best_val_error


def test_batch_manhattan_at_a_huge_lr_diverges_instead_of_ending_at_chance(workdir):
    """BM's steps are +-LR whatever the gradient: at LR x1e6 its weights stay finite while its
    loss explodes to ~1e15 and its error sits at chance. That is a divergence, not a result."""
    result = run_cell(cfg_in(workdir, "method=bm", "lr_scale=1e6", "schedule.epochs=5"))
    assert result.status == "diverged" and result.epochs_run == 1
    assert "chance-level loss 2.3" in result.diverged_because  # ln 10
    assert result.best_val_error is None and result.final_val_error > 80  # at chance


def test_failure_marks_the_run_failed_with_the_error_and_writes_no_result(workdir):
    result = run_cell(cfg_in(workdir, "dataset=mnist", f"dataset.root={workdir}/none"))
    assert result.status == "failed" and "FileNotFoundError" in result.error
    run = client(workdir).get_run(result.run_id)
    assert run.info.status == "FAILED"
    assert f"{workdir}/none" in run.data.tags["error"]
    assert not (Path(result.cell_dir) / "result.json").exists()


def test_a_cell_that_fails_mid_training_says_how_many_epochs_it_ran(workdir, monkeypatch):
    from bpgrid.trainer import Trainer
    train_epoch = Trainer.train_epoch

    def third_fails(self, epoch):
        if epoch == 3:
            raise RuntimeError("the third epoch breaks")
        return train_epoch(self, epoch)
    monkeypatch.setattr(Trainer, "train_epoch", third_fails)
    result = run_cell(cfg_in(workdir, "schedule.epochs=4"))
    assert result.status == "failed" and "the third epoch breaks" in result.error
    assert result.epochs_run == 2 and result.resumed_from_epoch is None
    assert [s for s, _ in history(workdir, result.run_id)] == [1, 2]  # in its FAILED run


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


def test_epochs_go_to_the_run_in_few_writes_and_a_kill_between_them_loses_none(tmp_path):
    """Epoch 1 is written after it ends, the rest (within LOG_SECONDS) with the result; a cell
    killed before its end has only epoch 1 in its run, and its resume logs 2 to 4, once each."""
    overrides = ["method=brsf_bn_bm", "schedule.epochs=4"]
    killed = tmp_path / "killed"
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); import bpgrid.cell as cell; "
            "from composing import compose_config; cell.LOG_SECONDS = 1e9; "
            "cell._end = lambda member: os._exit(9); "
            "cell.run_cell(compose_config(sys.argv[2:]))")
    died = subprocess.run([sys.executable, "-c", code, str(REPO / "tests"),
                           *local_overrides(killed), "dataset=digits", *overrides], cwd=REPO,
                          capture_output=True, text=True)
    assert died.returncode == 9, died.stderr[-3000:]
    run_id = client(killed).search_runs(
        [client(killed).get_experiment_by_name("adhoc").experiment_id])[0].info.run_id
    assert [s for s, _ in history(killed, run_id)] == [1]  # the rest was in the checkpoint only

    writes = []
    log_batch = MlflowClient.log_batch
    def counted(self, run_id, metrics=(), **kw):
        writes.append(sorted({m.step for m in metrics}))
        return log_batch(self, run_id, metrics=metrics, **kw)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MlflowClient, "log_batch", counted)
        resumed = run_cell(cfg_in(killed, *overrides))
    assert resumed.status == "done" and resumed.resumed_from_epoch == 4
    assert [w for w in writes if w] == [[2, 3, 4]]  # the epochs it lacked, with the result
    whole = run_cell(cfg_in(tmp_path / "whole", *overrides))
    for key in ("val_error", "train_loss"):
        assert history(killed, run_id, key) == history(tmp_path / "whole", whole.run_id, key)


# ------------------------------------------------------------ files, owners, failures

def test_an_unreadable_checkpoint_costs_one_epoch_and_nothing_is_logged_twice(workdir):
    first = run_cell(cfg_in(workdir, "method=brsf_bn_bm", "schedule.epochs=3"))
    cell = Path(first.cell_dir)
    (cell / "result.json").unlink()  # as if killed after its last checkpoint
    (cell / "checkpoint.pt").write_bytes(b"")  # and the node crashed before the data was on disk
    again = run_cell(cfg_in(workdir, "method=brsf_bn_bm", "schedule.epochs=3"))
    assert again.status == "done" and again.resumed_from_epoch == 2  # from checkpoint.prev.pt
    assert again.best_val_error == first.best_val_error and again.run_id == first.run_id
    assert len(again.set_aside) == 1 and f"{cell}/checkpoint.pt: unreadable" in again.set_aside[0]
    assert len(list(cell.glob("checkpoint.pt.unreadable-*"))) == 1
    assert [s for s, _ in history(workdir, first.run_id)] == [1, 2, 3]  # epoch 3 logged once
    assert client(workdir).get_run(first.run_id).info.status == "FINISHED"


def test_an_unreadable_result_is_set_aside_and_rebuilt_without_training(workdir):
    first = run_cell(cfg_in(workdir, "schedule.epochs=2"))
    result = Path(first.cell_dir) / "result.json"
    result.write_text(result.read_text()[:40])  # half-written
    again = run_cell(cfg_in(workdir, "schedule.epochs=2"))
    assert not again.cached and again.status == "done" and again.resumed_from_epoch == 2
    assert again.train_seconds == first.train_seconds  # no epoch trained again
    assert again.set_aside[0].startswith(f"{result}: unreadable (JSONDecodeError")
    assert json.loads(result.read_text())["best_val_error"] == first.best_val_error


def test_a_result_stored_before_its_run_ended_ends_the_run_when_looked_up(workdir):
    first = run_cell(cfg_in(workdir, "schedule.epochs=2"))
    result = Path(first.cell_dir) / "result.json"
    result.write_text(json.dumps({**json.loads(result.read_text()), "run_ended": False}))
    client(workdir).update_run(first.run_id, "RUNNING")  # killed between the two
    again = run_cell(cfg_in(workdir, "schedule.epochs=2"))
    assert again.cached and again.run_ended
    assert client(workdir).get_run(first.run_id).info.status == "FINISHED"
    assert json.loads(result.read_text())["run_ended"] is True


def attempts(cell_dir: str) -> list[str]:
    """How each attempt at the cell ended, from its journal."""
    path = Path(cell_dir) / "attempts.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [a["status"] for a in lines if a["event"] == "end"]


def test_a_failed_cell_is_tried_once_per_sweep_and_again_by_the_next(workdir):
    missing = ["dataset=mnist", f"dataset.root={workdir}/none", "grid.name=g"]
    first = run_cell(cfg_in(workdir, *missing, "+grid.sweep_id=s1"))
    assert first.status == "failed" and f"{workdir}/none" in first.error
    marker = json.loads((Path(first.cell_dir) / "failed.json").read_text())
    assert marker["sweep_id"] == "s1" and f"{workdir}/none" in marker["error"]
    assert marker["pid"] == os.getpid() and marker["log"]
    same = run_cell(cfg_in(workdir, *missing, "+grid.sweep_id=s1"))  # another worker of s1
    assert same.status == "failed" and same.cached and "failed earlier in this sweep" in same.error
    assert attempts(first.cell_dir) == ["failed"]  # not tried again
    later = run_cell(cfg_in(workdir, *missing, "+grid.sweep_id=s2"))  # a rerun tries again
    assert later.status == "failed" and not later.cached
    assert attempts(first.cell_dir) == ["failed", "failed"]


def dead_owner_lease(cell_dir: Path, sweep_id: str) -> None:
    """The lease a worker leaves when it is killed while it trains the cell."""
    from bpgrid.jobs import machine

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / "lease.json").write_text(json.dumps({
        "token": "dead", "machine": machine(), "pid": int(proc.stdout), "host": "here",
        "log": "/logs/worker-3.err", "sweep_id": sweep_id, "since": 0, "heartbeat": 0}))


def test_a_cell_whose_worker_died_in_this_sweep_is_failed_not_retried(workdir):
    cfg = cfg_in(workdir, "schedule.epochs=2", "+grid.sweep_id=s1")
    cell_dir = workdir / "cells" / cell_id(cfg)
    dead_owner_lease(cell_dir, "s1")
    result = run_cell(cfg)
    assert result.status == "failed" and "its owner in this sweep died" in result.error
    assert "/logs/worker-3.err" in result.error
    dead_owner_lease(cell_dir, "s1")
    resumed = run_cell(cfg_in(workdir, "schedule.epochs=2", "+grid.sweep_id=s2"))
    assert resumed.status == "done" and not (cell_dir / "failed.json").exists()
    assert not (cell_dir / "lease.json").exists()


def test_a_cell_a_live_owner_holds_is_left_to_it(workdir):
    from bpgrid import lease

    cfg = cfg_in(workdir, "schedule.epochs=2")
    held = lease.acquire(workdir / "cells" / cell_id(cfg) / "lease.json")
    try:
        result = run_cell(cfg)
    finally:
        held.release()
    assert result.status == "running" and f"pid {os.getpid()}" in result.owner
    assert f"cell {cell_id(cfg)} is owned by" in result.error
    assert not (workdir / "cells" / cell_id(cfg) / "checkpoint.pt").exists()
    assert client(workdir).get_experiment_by_name("adhoc") is None  # no run was made


def test_a_cell_made_under_its_legacy_id_is_found_under_its_new_one(workdir):
    from bpgrid.config import legacy_cell_id

    cfg = cfg_in(workdir, "schedule.epochs=2")
    new, old = cell_id(cfg), legacy_cell_id(cfg)
    first = run_cell(cfg)
    # as the code before the change left it: the folder and the run named by the legacy id
    (workdir / "cells" / new).rename(workdir / "cells" / old)
    client(workdir).set_tag(first.run_id, "cell_id", old)
    again = run_cell(cfg)
    assert again.cached and again.cell_id == new and again.best_val_error == first.best_val_error
    assert (workdir / "cells" / new / "result.json").exists()
    assert not (workdir / "cells" / old).exists()
    run = client(workdir).get_run(first.run_id)
    assert (run.data.tags["cell_id"], run.data.tags["legacy_cell_id"]) == (new, old)
    assert run.info.run_name == "sgd/digits/lr1/s0"  # its name never was its id
