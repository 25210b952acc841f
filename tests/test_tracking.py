import pytest

from bpgrid import tracking


def test_locked_database_is_retried_then_succeeds(monkeypatch):
    monkeypatch.setattr(tracking.time, "sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert tracking._retry_locked(flaky) == "ok" and len(calls) == 3


def test_other_errors_and_endless_locks_are_raised(monkeypatch):
    monkeypatch.setattr(tracking.time, "sleep", lambda s: None)

    def broken():
        raise ValueError("bad request")

    with pytest.raises(ValueError, match="bad request"):
        tracking._retry_locked(broken)

    def locked():
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="locked"):
        tracking._retry_locked(locked)


def test_experiment_created_once_and_runs_found_by_cell(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    tracking.prepare_store(uri)
    a = tracking.Tracker(uri, "grid", str(tmp_path / "art"))
    b = tracking.Tracker(uri, "grid", str(tmp_path / "art"))
    assert a.experiment_id == b.experiment_id
    run = a.start("abc", {"seed": "0"}, {"grid": "grid"})
    assert b.find_run("abc") == run and b.start("abc", {}, {}) == run
    a.finish(run)
    assert b.find_run("abc") is None


def _hammer(uri: str, worker: int, cells: int, epochs: int) -> None:
    t = tracking.Tracker(uri, "stress")
    for c in range(cells):
        run = t.start(f"w{worker}c{c}", {"worker": str(worker)}, {})
        for epoch in range(1, epochs + 1):
            t.log_metrics(run, {"val_error": float(epoch), "train_loss": 1.0 / epoch}, epoch)
        t.finish(run)


@pytest.mark.slow
def test_parallel_writers_to_one_sqlite_store_lose_nothing(tmp_path):
    import multiprocessing as mp

    uri = f"sqlite:///{tmp_path}/m.db"
    tracking.prepare_store(uri)
    tracking.Tracker(uri, "stress")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(uri, w, 4, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    client = tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name("stress")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) == 16 and all(r.info.status == "FINISHED" for r in runs)
    assert all(len(client.get_metric_history(r.info.run_id, "val_error")) == 15 for r in runs)


STORE_RACE = """
import os, sys, time
import mlflow.store.db.utils, mlflow.store.tracking.sqlalchemy_store
from bpgrid import tracking
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
tracking.prepare_store(sys.argv[1])
print(tracking.Tracker(sys.argv[1], "grid").experiment_id, flush=True)
"""


def test_sweeps_starting_at_once_on_a_fresh_database_all_start(tmp_path):
    """Sweeps creating one new SQLite store at the same instant: MLflow's own table creation
    races ("table metrics already exists", "duplicate column name"); bpgrid's serialises it."""
    import subprocess
    import sys

    uri, go = f"sqlite:///{tmp_path}/fresh.db", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", STORE_RACE, uri, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 4
    go.touch()  # all four start creating the store now
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-300:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1  # one experiment, the same for all


def test_an_experiment_name_cannot_put_artifacts_outside_the_artifact_folder(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    with pytest.raises(ValueError, match="outside tracking.artifacts"):
        tracking.Tracker(uri, "../../x", str(tmp_path / "art"))
    assert not (tmp_path.parent / "x").exists()
