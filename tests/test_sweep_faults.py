"""A sweep attacked as a hostile but realistic user would: corrupt files, a full disk, a lost
tracking server, signals, two owners of one cell, moved data. Through the real CLI and the real
local launcher; each test checks that nothing was lost, nothing ran twice, and that the message
names the file or the cell."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from composing import local_overrides
from data.conftest import write_idx
from mlflow.tracking import MlflowClient
from test_sweep import runs_by_cell, sweep_cmd

from bpgrid.jobs import process_alive, process_start
from bpgrid.shutdown import GRACE_SECONDS

REPO = Path(__file__).resolve().parent.parent
LOCAL = "hydra/launcher=local"


def sweep(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_cmd(root, *args), cwd=root, capture_output=True, text=True,
                          env=env)


def results(root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text())
            for p in (root / "cells").glob("*/result.json")}


def assert_each_cell_ran_once(root: Path, epochs: int, uri: str | None = None) -> None:
    """One FINISHED run per cell, each epoch logged once, and a result that says so."""
    runs = runs_by_cell(root, uri)
    client = MlflowClient(uri or f"sqlite:///{root}/mlflow.db")
    done = results(root)
    assert set(runs) == set(done)
    for cid, cell_runs in runs.items():
        assert len(cell_runs) == 1 and cell_runs[0].info.status == "FINISHED", cid
        steps = [m.step for m in client.get_metric_history(cell_runs[0].info.run_id, "val_error")]
        assert sorted(steps) == list(range(1, epochs + 1)), cid
        assert done[cid]["epochs_run"] == epochs and done[cid]["run_ended"]


def fake_mnist(root: Path, train: int = 60, test: int = 20) -> Path:
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (train, 28, 28)))
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(train) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (test, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(test) % 10)
    return root


DIGITS = ["method=sgd,usf_bn_bm", "lr_scale=10", "dataset=digits", LOCAL]


@pytest.mark.slow
def test_corrupt_result_checkpoint_and_dataset_files(tmp_path):
    assert sweep(tmp_path, *DIGITS, "schedule.epochs=3").returncode == 0
    (first, a), (second, b) = sorted(results(tmp_path).items())
    cells = tmp_path / "cells"
    (cells / first / "result.json").write_text('{"cell_id": "' + first)  # half-written
    (cells / second / "result.json").unlink()  # killed after its last epoch...
    (cells / second / "checkpoint.pt").write_bytes(b"")  # ...and the node lost its data
    mnist = fake_mnist(tmp_path / "mnist")
    images = mnist / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:500])  # a truncated download

    out = sweep(tmp_path, "method=sgd,usf_bn_bm", "lr_scale=10", "dataset=digits,mnist",
                f"dataset.root={mnist}", "schedule.epochs=3", LOCAL)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "4 cells: 2 done, 0 skipped, 0 diverged, 2 failed" in out.stdout
    assert f"set aside {cells / first}/result.json: unreadable" in out.stdout
    assert f"set aside {cells / second}/checkpoint.pt: unreadable" in out.stdout
    assert out.stdout.count(f"{images}: truncated or padded idx file") == 2  # each names it
    again = results(tmp_path)
    assert again[first]["train_seconds"] == a["train_seconds"]  # rebuilt, not retrained
    assert again[second]["resumed_from_epoch"] == 2  # one epoch again, from checkpoint.prev.pt
    assert again[first]["best_val_error"] == a["best_val_error"]
    assert again[second]["best_val_error"] == b["best_val_error"]
    runs = runs_by_cell(tmp_path)
    for cid in (first, second):
        assert len(runs[cid]) == 1 and runs[cid][0].info.status == "FINISHED"
        steps = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_metric_history(
            runs[cid][0].info.run_id, "val_error")
        assert sorted(m.step for m in steps) == [1, 2, 3]


@pytest.fixture
def small_disk(tmp_path):
    """A 700 KB tmpfs: room for the files of about two digits cells."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); needs root or "
                    f"CAP_SYS_ADMIN")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def stored(path: Path) -> dict:
    """A result file's content but its ``run_ended`` mark, which a full disk may have kept
    from being written (the next sweep's look-up writes it)."""
    return {k: v for k, v in json.loads(path.read_text()).items() if k != "run_ended"}


@pytest.mark.slow
def test_a_full_disk_fails_the_cells_it_stops_and_no_other(tmp_path, small_disk):
    axes = ["method=sgd,usf_bn_bm,frsf_bn_bm", "lr_scale=10,1", "dataset=digits",
            "schedule.epochs=2", LOCAL, f"cells_dir={small_disk}"]
    out = sweep(tmp_path, *axes)
    assert out.returncode == 1, out.stderr[-3000:]
    summary = json.loads((tmp_path / "multirun" / "summary.json").read_text())
    statuses = summary["statuses"]
    assert len(statuses) == 6 and set(statuses.values()) == {"done", "failed"}
    failed = {f["cell_id"]: f for f in summary["failed"]}
    assert set(failed) == {c for c, s in statuses.items() if s == "failed"}
    for cid, failure in failed.items():  # each says why, and where to look
        assert "No space left on device" in failure["error"], failure
        assert f"failed {cid}: " in out.stdout and failure["log"].endswith(".err")
    finished = {p.parent.name: stored(p) for p in small_disk.glob("*/result.json")}
    assert set(finished) == {c for c, s in statuses.items() if s == "done"}

    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    again = sweep(tmp_path, *axes)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"6 cells: {len(failed)} done, {6 - len(failed)} skipped" in again.stdout
    for cid, result in finished.items():  # nothing that had finished was trained again
        assert stored(small_disk / cid / "result.json") == result
        assert json.loads((small_disk / cid / "result.json").read_text())["run_ended"]
    runs = runs_by_cell(tmp_path)
    assert len(runs) == 6 and all(len(r) == 1 and r[0].info.status == "FINISHED"
                                  for r in runs.values())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server(action: str, store: Path, port: int) -> str:
    env = {**os.environ, "MLFLOW": str(Path(sys.executable).parent / "mlflow")}
    out = subprocess.run(["bash", str(REPO / "launch" / "mlflow_server.sh"), action,
                          "--port", str(port), "--store", str(store)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.slow
def test_a_tracking_server_lost_past_its_retries_fails_cells_and_a_rerun_finishes(tmp_path):
    store, port = tmp_path / "server", free_port()
    uri = server("start", store, port).removeprefix("tracking.uri=")
    assert uri == f"http://127.0.0.1:{port}"  # bound to this machine alone by default
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
           "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    axes = ["method=sgd,usf_bn_bm", "lr_scale=10,1", "dataset=digits", "schedule.epochs=60",
            LOCAL, f"tracking.uri={uri}"]
    try:
        proc = subprocess.Popen(sweep_cmd(tmp_path, *axes), cwd=tmp_path, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 300
        while not list((tmp_path / "cells").glob("*/checkpoint.pt")):
            assert time.time() < deadline and proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.1)
        server("stop", store, port)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 1, err[-3000:]
        summary = json.loads((tmp_path / "multirun" / "summary.json").read_text())
        assert summary["counts"].get("failed", 0) >= 2  # at least the two it was training
        assert len(summary["statuses"]) == 4  # every cell tried: no worker died of it
        for failure in summary["failed"]:
            assert f"failed {failure['cell_id']}: " in out
            assert "127.0.0.1" in failure["error"] or "Connection" in failure["error"], failure

        server("start", store, port)
        again = sweep(tmp_path, *axes, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert_each_cell_ran_once(tmp_path, 60, uri)
    finally:
        server("stop", store, port)


def tree(pid: int) -> list[tuple[int, int | None]]:
    from bpgrid.backends.local import descendants

    return [(p, process_start(p)) for p in descendants(pid)]


def start_sweep(root: Path, *axes: str, until: str = "checkpoint.pt", count: int = 2
                ) -> subprocess.Popen:
    """The sweep, started, once ``count`` cells have the file ``until``."""
    proc = subprocess.Popen(sweep_cmd(root, *axes), cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while len(list((root / "cells").glob(f"*/{until}"))) < count:
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.1)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
                         ids=["TERM", "HUP", "KILL"])
def test_a_stopped_sweep_leaves_no_worker_and_every_cell_resumes(tmp_path, how):
    axes = ["method=sgd,usf_bn_bm", "lr_scale=10,1", "dataset=digits", "schedule.epochs=150",
            LOCAL]
    proc = start_sweep(tmp_path, *axes)
    workers = tree(proc.pid)
    assert len(workers) >= 4  # two submitit controllers, each with its worker
    proc.send_signal(how)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -how if how == signal.SIGKILL else 128 + how
    if how != signal.SIGKILL:
        assert "interrupted" in out and "run the same command again to resume" in out
    deadline = time.time() + GRACE_SECONDS + 30  # a worker left alone stops by itself
    while any(process_alive(*w) for w in workers) and time.time() < deadline:
        time.sleep(0.5)
    assert not [w for w in workers if process_alive(*w)], "a worker outlived its sweep"
    assert not list((tmp_path / "cells").glob("*/lease.json"))  # every cell given back
    stopped = [json.loads(line) for p in (tmp_path / "cells").glob("*/attempts.jsonl")
               for line in p.read_text().splitlines()]
    assert {a["status"] for a in stopped if a["event"] == "end"} <= {"stopped", "done"}

    again = sweep(tmp_path, *axes)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_each_cell_ran_once(tmp_path, 150)
    resumed = [r["resumed_from_epoch"] for r in results(tmp_path).values()]
    assert sum(1 for r in resumed if r) >= 2  # the cells in flight went on from their epoch


def train_cmd(root: Path, *overrides: str) -> list[str]:
    """bpgrid.train of one of the quick grid's cells."""
    return [sys.executable, "-m", "bpgrid.train", "+grid=quick", *local_overrides(root),
            "dataset=digits", *overrides]


@pytest.mark.slow
def test_two_owners_of_one_cell_train_it_once(tmp_path):
    """Two bpgrid.train of one cell at once, then a sweep over it while one still trains."""
    cell = ["method=sgd", "lr_scale=10", "schedule.epochs=100"]
    procs = [subprocess.Popen(train_cmd(tmp_path, *cell), cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    deadline = time.time() + 300
    while not list((tmp_path / "cells").glob("*/checkpoint.pt")):
        assert time.time() < deadline, "no copy started"
        time.sleep(0.1)
    during = sweep(tmp_path, "method=sgd", "lr_scale=10,1", "dataset=digits",
                   "schedule.epochs=100", LOCAL)
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], [e[-2000:] for _, e in outs]
    refused = next(err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode == 3)
    trained = next(p for p in procs if p.returncode == 0)
    cid = json.loads(next(out for p, (out, _) in zip(procs, outs, strict=True)
                          if p.returncode == 0).splitlines()[-1])["cell_id"]
    assert f"cell {cid} is owned by pid {trained.pid} on " in refused
    assert during.returncode == 0, during.stderr[-3000:]
    assert "2 cells, 0 already finished, 1 owned by live jobs (running), 1 to run" in \
        during.stderr
    status = json.loads((tmp_path / "multirun" / "summary.json").read_text())["statuses"][cid]
    if status == "running":  # its owner had not finished when the sweep ended
        assert f"running {cid}: pid {trained.pid} on " in during.stdout
    else:
        assert status == "done"
    journal = (tmp_path / "cells" / cid / "attempts.jsonl").read_text().splitlines()
    assert [json.loads(a)["pid"] for a in journal] == [trained.pid] * 2  # its start and end
    assert_each_cell_ran_once(tmp_path, 100)


@pytest.mark.slow
def test_moved_data_and_cells_made_under_legacy_ids_rerun_nothing(tmp_path):
    from composing import compose_config

    from bpgrid.config import cell_id, legacy_cell_id

    old_root = fake_mnist(tmp_path / "data" / "mnist")
    axes = ["method=sgd", "lr_scale=10,1", "dataset=mnist", "model=mlp", "schedule.epochs=2",
            LOCAL]
    assert sweep(tmp_path, *axes, f"dataset.root={old_root}").returncode == 0
    before = {cid: r["run_id"] for cid, r in results(tmp_path).items()}
    # as bpgrid left them before the root stopped being a factor: folders and runs by legacy id
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    legacy = {}
    for scale in (10, 1):
        cfg = compose_config([*local_overrides(tmp_path), "+grid=quick", "method=sgd",
                              f"lr_scale={scale}", "dataset=mnist", "model=mlp",
                              "schedule.epochs=2", f"dataset.root={old_root}"], "sweep")
        new, old = cell_id(cfg), legacy_cell_id(cfg)
        assert new in before and old != new
        (tmp_path / "cells" / new).rename(tmp_path / "cells" / old)
        client.set_tag(before[new], "cell_id", old)
        legacy[old] = new
    new_root = tmp_path / "scratch" / "mnist"
    shutil.move(old_root, new_root)  # the data moved meanwhile

    found = sweep(tmp_path, *axes, f"dataset.root={old_root}", "grid.dry_run=true")
    assert "2 found under their legacy ids" in found.stdout
    # the dry run moves them, and says that a run with that root would find no data
    assert found.returncode == 2 and f"mnist: no files at {old_root}" in found.stderr
    again = sweep(tmp_path, *axes, f"dataset.root={new_root}/")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 cells: 0 done, 2 skipped" in again.stdout
    assert {cid: r["run_id"] for cid, r in results(tmp_path).items()} == before
    for old, new in legacy.items():
        run = client.get_run(before[new])
        assert (run.data.tags["cell_id"], run.data.tags["legacy_cell_id"]) == (new, old)
    assert sum(len(r) for r in runs_by_cell(tmp_path).values()) == 2


@pytest.mark.parametrize("args,message", [
    (["hydra.launcher.workers=abc"], "hydra.launcher.workers must be a positive integer, got "
                                     "'abc'"),
    (["seed=abc"], "seed: must be a non-negative integer, got 'abc'"),
    (["grid.name=../../x"], "grid.name: must be a plain name"),
])
def test_bad_settings_stop_the_sweep_with_one_message(tmp_path, args, message):
    out = sweep(tmp_path, "method=sgd", "lr_scale=1", "dataset=digits", LOCAL, *args)
    assert out.returncode == 2 and message in out.stderr
    assert not (tmp_path / "cells").exists() and not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path.parent / "x").exists()


def test_a_bad_seed_makes_no_run(tmp_path):
    out = subprocess.run(train_cmd(tmp_path, "seed=abc"), cwd=tmp_path, capture_output=True,
                         text=True)
    assert out.returncode == 2 and "seed: must be a non-negative integer, got 'abc'" in out.stderr
    assert not (tmp_path / "mlflow.db").exists()
