"""Fused sweeps (``grid.fuse``) through the real CLI and local launcher: each cell of an array
ends with the results, metrics, files and MLflow run it has when trained alone; a member fails,
diverges, resumes or restarts alone; a killed fused sweep finishes every cell exactly once."""

import json
import os
import re
import signal
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_sweep import runs_by_cell
from test_sweep_faults import assert_each_cell_ran_once, results, start_sweep, sweep, tree

from bpgrid.jobs import process_alive

LOCAL = "hydra/launcher=local"
#: two arrays of three on digits: BM at LR x1e6 diverges in epoch 1 (tests/test_cell.py), SGD's
#: at x1e6 too, the others learn
AXES = ["method=sgd,bm", "lr_scale=1e6,10,1", "dataset=digits", "schedule.epochs=3", LOCAL]
METRICS = ("val_error", "train_loss", "train_error", "lr")


def metrics(root: Path, run_id: str) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
            for key in METRICS}


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def journal(root: Path, cid: str) -> list[str]:
    lines = (root / "cells" / cid / "attempts.jsonl").read_text().splitlines()
    return [a["status"] for a in map(json.loads, lines) if a["event"] == "end"]


@pytest.mark.slow
def test_fused_cells_end_as_they_do_alone_a_diverging_member_alone(tmp_path):
    (tmp_path / "fused").mkdir()
    (tmp_path / "alone").mkdir()
    fused = sweep(tmp_path / "fused", *AXES)
    assert fused.returncode == 0, fused.stderr[-3000:]
    assert "6 cells to run as 2 fused arrays of up to 3 cells" in fused.stderr
    alone = sweep(tmp_path / "alone", *AXES, "grid.fuse=off")
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "fused arrays" not in alone.stderr
    logs = "".join(p.read_text() for p in (tmp_path / "fused").glob("multirun/**/*_log.err"))
    assert len(re.findall(r"done, best val error \d+\.\d\d% \(epoch \d\), 3 epochs, "
                          r"\d+\.\d s in an array of 3\n", logs)) == 4  # the array's time
    a, b = results(tmp_path / "fused"), results(tmp_path / "alone")
    assert set(a) == set(b) and len(a) == 6
    assert sorted(r["status"] for r in a.values()) == ["diverged"] * 2 + ["done"] * 4
    for cid in a:
        keys = ("status", "best_val_error", "best_epoch", "final_val_error", "epochs_run",
                "diverged_because")
        assert {k: a[cid][k] for k in keys} == {k: b[cid][k] for k in keys}, cid
        fused_metrics = metrics(tmp_path / "fused", a[cid]["run_id"])
        alone_metrics = metrics(tmp_path / "alone", b[cid]["run_id"])
        for key in METRICS:  # float32's tolerance of tests/arrays (measured: 3e-8)
            assert [s for s, _ in fused_metrics[key]] == [s for s, _ in alone_metrics[key]]
            assert [v for _, v in fused_metrics[key]] == \
                pytest.approx([v for _, v in alone_metrics[key]], rel=1e-5, nan_ok=True), \
                (cid, key)
        assert journal(tmp_path / "fused", cid) == [a[cid]["status"]]
        assert (tmp_path / "fused" / "cells" / cid / "config.yaml").exists()
    diverged = [r for r in a.values() if r["status"] == "diverged"]
    assert all(r["epochs_run"] == 1 for r in diverged)
    bm, sgd = sorted(r["diverged_because"] for r in diverged)  # BM's loss explodes, SGD's is NaN
    assert "in epoch 1, more than 1000x the chance-level loss" in bm
    assert sgd == "training loss nan in epoch 1"
    for runs in runs_by_cell(tmp_path / "fused").values():
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        assert runs[0].data.tags["status"] in ("done", "diverged")


@pytest.mark.slow
def test_a_member_with_a_corrupt_checkpoint_resumes_beside_members_that_resume(tmp_path):
    axes = ["method=usf_bn_bm,frsf_bn_bm", "lr_scale=10,1", "dataset=digits",
            "schedule.epochs=3", LOCAL]
    assert sweep(tmp_path, *axes).returncode == 0
    first = results(tmp_path)
    (corrupt, a), (rewound, _), (rebuilt, _), (kept, k) = sorted(first.items())
    cells = tmp_path / "cells"
    for cid in (corrupt, rewound, rebuilt):  # killed after their last checkpoint
        (cells / cid / "result.json").unlink()
    (cells / corrupt / "checkpoint.pt").write_bytes(b"")  # the node lost its data
    os.replace(cells / rewound / "checkpoint.prev.pt", cells / rewound / "checkpoint.pt")
    kept_mtime = (cells / kept / "result.json").stat().st_mtime_ns

    again = sweep(tmp_path, *axes)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 cells: 3 done, 1 skipped" in again.stdout
    assert f"set aside {cells / corrupt}/checkpoint.pt: unreadable" in again.stdout
    second = results(tmp_path)
    assert second[corrupt]["resumed_from_epoch"] == 2 == second[rewound]["resumed_from_epoch"]
    assert second[rebuilt]["resumed_from_epoch"] == 3
    assert second[rebuilt]["train_seconds"] == first[rebuilt]["train_seconds"]  # not retrained
    assert (cells / kept / "result.json").stat().st_mtime_ns == kept_mtime
    for cid in first:  # epoch 3 trained again in an array of two, to the same numbers
        assert second[cid]["best_val_error"] == first[cid]["best_val_error"], cid
        assert second[cid]["final_val_error"] == first[cid]["final_val_error"], cid
    assert_each_cell_ran_once(tmp_path, 3)


@pytest.mark.slow
def test_a_fused_sweep_whose_worker_is_killed_finishes_every_cell_once_on_a_rerun(tmp_path):
    axes = ["method=usf_bn_bm,frsf_bn_bm", "lr_scale=10,1", "dataset=digits,mnist1d",
            "schedule.epochs=40", LOCAL]
    proc = start_sweep(tmp_path, *axes, until="checkpoint.prev.pt", count=8)
    workers = [p for p, _ in tree(proc.pid) if parent(p) != proc.pid]
    assert len(workers) == 2  # each submitit controller's worker, each mid-array
    os.kill(workers[-1], signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-3000:]  # its cells failed in this sweep, no others
    summary = json.loads((tmp_path / "multirun" / "summary.json").read_text())
    failed = {cid for cid, s in summary["statuses"].items() if s == "failed"}
    assert failed and set(summary["statuses"].values()) == {"done", "failed"}
    finished = {cid: (tmp_path / "cells" / cid / "result.json").stat().st_mtime_ns
                for cid, s in summary["statuses"].items() if s == "done"}

    again = sweep(tmp_path, *axes)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"8 cells: {len(failed)} done, {8 - len(failed)} skipped" in again.stdout
    assert_each_cell_ran_once(tmp_path, 40)
    done = results(tmp_path)
    for cid in failed:  # resumed from its checkpoint, losing at most the epoch in flight
        assert done[cid]["resumed_from_epoch"] >= 2, cid
        assert journal(tmp_path, cid).count("done") == 1
    for cid, mtime in finished.items():  # never retrained
        assert (tmp_path / "cells" / cid / "result.json").stat().st_mtime_ns == mtime
        assert journal(tmp_path, cid) == ["done"]
    assert not [p for p in workers if process_alive(p, None)]


@pytest.mark.parametrize("args,message", [
    (["grid.max_array=0"], "grid.max_array: must be null (sized by the device) or a positive "
                           "integer, got 0"),
    (["grid.fuse=maybe"], "grid.fuse: must be auto or off, got 'maybe'"),
])
def test_bad_fusing_settings_stop_the_sweep_with_one_message(tmp_path, args, message):
    out = sweep(tmp_path, "method=sgd", "lr_scale=1", "dataset=digits", LOCAL, *args)
    assert out.returncode == 2 and out.stderr.startswith(f"bpgrid.sweep: {message} in the cell: ")
    assert len(out.stderr.splitlines()) == 1
    assert not (tmp_path / "cells").exists() and not (tmp_path / "mlflow.db").exists()
