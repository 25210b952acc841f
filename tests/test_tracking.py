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


def test_a_child_run_is_named_for_people_and_keeps_its_parent_when_resumed(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    t = tracking.Tracker(uri, "grid")
    parent = t.client.create_run(t.experiment_id, run_name="grid 2026-01-01 00:00:00").info
    run = t.start("abc", {"lr_scale": "100"}, {"sweep_id": "s1"}, name="sgd/digits/lr100/s0",
                  parent=parent.run_id)
    t.log_epochs(run, [{"epoch": 3, "val_error": 9.5}])
    t.stop(run)
    again = t.start("abc", {}, {"sweep_id": "s2", "dataset_root": ""})  # a rerun resumes it
    got = t.client.get_run(run)
    assert again == run and got.info.run_name == "sgd/digits/lr100/s0"
    assert got.data.tags[tracking.PARENT_TAG] == parent.run_id  # the sweep that started it
    assert got.data.tags["sweep_id"] == "s2" and "dataset_root" not in got.data.tags
    assert "epoch" not in got.data.metrics
    assert [(m.step, m.value) for m in t.client.get_metric_history(run, "val_error")] == [(3, 9.5)]
    alone = t.start("def", {}, {})
    assert tracking.PARENT_TAG not in t.client.get_run(alone).data.tags
    assert t.client.get_run(alone).info.run_name == "def"


def test_retagging_renames_only_runs_named_by_their_old_id(tmp_path):
    t = tracking.Tracker(f"sqlite:///{tmp_path}/m.db", "grid")
    old_style = t.start("old1", {}, {})
    t.finish(old_style)
    readable = t.start("old1", {}, {}, name="sgd/digits/lr1/s0")
    assert sorted(t.retag("old1", "new1")) == sorted([old_style, readable])
    names = {t.client.get_run(r).info.run_name for r in (old_style, readable)}
    assert names == {"new1", "sgd/digits/lr1/s0"}


KILLED_WHILE_CREATING = """
import os, signal, sys
import mlflow.store.db.utils as db_utils
from bpgrid import tracking
real = db_utils._initialize_tables
def killed_half_way(engine):  # some tables made, then the process is killed
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE experiments (experiment_id INTEGER)")
    os.kill(os.getpid(), signal.SIGKILL)
db_utils._initialize_tables = killed_half_way
tracking.prepare_store(sys.argv[1])
"""


def test_a_process_killed_while_creating_the_store_leaves_none_half_made(tmp_path):
    """A sweep killed while MLflow makes a new SQLite store's tables left a half-made database
    that every later sweep failed to open ("table ... already exists")."""
    import subprocess
    import sys

    uri, db = f"sqlite:///{tmp_path}/fresh.db", tmp_path / "fresh.db"
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_CREATING, uri], timeout=300)
    assert killed.returncode == -9 and (tmp_path / "fresh.db.new").exists()
    assert not db.exists()  # the half-made tables are not where the store is looked for
    tracking.prepare_store(uri)
    assert tracking.Tracker(uri, "grid").experiment_id


def test_epochs_and_final_numbers_go_in_writes_of_at_most_max_batch_metrics(tmp_path, monkeypatch):
    t = tracking.Tracker(f"sqlite:///{tmp_path}/m.db", "grid")
    run = t.start("abc", {}, {})
    writes = []
    log_batch = t.client._client.log_batch
    monkeypatch.setattr(t.client._client, "log_batch",
                        lambda run_id, **kw: writes.append(kw) or log_batch(run_id, **kw))
    monkeypatch.setattr(tracking, "MAX_BATCH", 3)
    t.log_epochs(run, [{"epoch": 1, "val_error": 50.0, "train_loss": 2.0},
                       {"epoch": 2, "val_error": 40.0, "train_loss": 1.5}],
                 {"best_val_error": 40.0}, step=2, tags={"status": "done"})
    assert [len(w["metrics"]) for w in writes] == [3, 2]
    assert [len(w["tags"]) for w in writes] == [1, 0]
    history = t.client.get_metric_history(run, "val_error")
    assert sorted((m.step, m.value) for m in history) == [(1, 50.0), (2, 40.0)]
    got = t.client.get_run(run).data
    assert got.metrics["best_val_error"] == 40.0 and got.tags["status"] == "done"
