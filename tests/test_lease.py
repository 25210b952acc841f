"""bpgrid/lease.py: one owner per cell, a live owner kept, a stale one taken over. Real processes
hold the leases; a foreign machine's owner is a lease file written as that machine writes it."""

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

import pytest

from bpgrid import lease
from bpgrid.jobs import machine, me, process_start


def held_by_another_process(path, ready):
    """A child that takes the lease and holds it until killed."""
    held = lease.acquire(path, sweep_id="s1")
    ready.set()
    time.sleep(600)
    held.release()


@pytest.fixture
def holder(tmp_path):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=held_by_another_process, args=(tmp_path / "c" / "lease.json", ready))
    proc.start()
    assert ready.wait(60)
    yield proc
    proc.kill()
    proc.join()


def write_lease(path, **fields):
    now = time.time()
    record = {"token": "theirs", "host": "node7", "machine": "node7/boot/1", "pid": 4242,
              "started": 1, "job_id": None, "log": "/logs/node7.err", "sweep_id": "s0",
              "kind": "owner", "since": now, "heartbeat": now, **fields}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


def test_a_live_owner_keeps_the_cell_and_the_refusal_names_it(tmp_path, holder):
    path = tmp_path / "c" / "lease.json"
    with pytest.raises(lease.Owned) as refused:
        lease.acquire(path)
    message = str(refused.value)
    assert f"cell c is owned by pid {holder.pid} on " in message and str(path) in message
    assert refused.value.holder["sweep_id"] == "s1"


def test_a_dead_owner_on_this_machine_is_taken_over_at_once(tmp_path, holder):
    path = tmp_path / "c" / "lease.json"
    holder.kill()
    holder.join()
    took = lease.acquire(path, sweep_id="s2")
    assert took.took_over["pid"] == holder.pid and took.took_over["sweep_id"] == "s1"
    assert json.loads(path.read_text())["token"] == took.token
    took.release()
    assert not path.exists()


def test_a_reused_pid_is_no_owner(tmp_path):
    """The recorded pid runs, but it is another process (its start time differs)."""
    path = tmp_path / "c" / "lease.json"
    write_lease(path, machine=machine(), pid=os.getpid(), started=process_start(os.getpid()) - 1)
    assert lease.acquire(path).took_over["token"] == "theirs"


def test_an_owner_elsewhere_is_live_while_its_heartbeat_is_fresh(tmp_path):
    path = tmp_path / "c" / "lease.json"
    write_lease(path, heartbeat=time.time() - lease.STALE_SECONDS / 2)
    with pytest.raises(lease.Owned, match="pid 4242 on node7 .*log: /logs/node7.err"):
        lease.acquire(path)
    write_lease(path, heartbeat=time.time() - lease.STALE_SECONDS - 1)  # silent too long
    assert lease.acquire(path).took_over["host"] == "node7"


def test_a_slurm_job_lives_while_slurm_lists_it():
    job = {"token": "t", "machine": "node7/boot/1", "pid": 4242, "job_id": "77_3",
           "heartbeat": 0.0, "kind": "owner"}
    assert lease.alive(job, {"77_3": "RUNNING"})  # its heartbeat is old, SLURM says it runs
    assert lease.alive(job, {"77_3": "PENDING"})  # requeued, waiting to resume
    assert not lease.alive(job, {"77_3": "CANCELLED"}) and not lease.alive(job, {})
    queued = {**job, "kind": lease.RESERVED}
    assert lease.alive(queued, {"77_3": "PENDING"}) and not lease.alive(queued, {})
    assert lease.alive(queued, None)  # SLURM cannot be asked: a queued job is assumed queued
    here = {**job, "machine": machine(), "pid": 2 ** 22 + 1}  # no such process here
    assert not lease.alive(here, {"77_3": "RUNNING"})  # stopped inside a live allocation


def test_a_reservation_is_taken_over_by_the_job_it_was_made_for(tmp_path):
    path = tmp_path / "c" / "lease.json"
    reserved = lease.acquire(path, kind=lease.RESERVED, token="tok", heartbeat=False)
    with pytest.raises(lease.Owned):  # anyone else is refused (the sweep that made it lives)
        lease.acquire(path)
    task = lease.acquire(path, token="tok")
    assert task.took_over is None  # its own reservation: no one died
    record = json.loads(path.read_text())
    assert record["kind"] == "owner" and record["since"] >= reserved.record["since"]


def test_an_owner_whose_lease_was_taken_over_stops(tmp_path):
    path = tmp_path / "c" / "lease.json"
    mine = lease.acquire(path)
    mine.check()
    write_lease(path)  # another owner replaced it (this one was thought dead)
    with pytest.raises(lease.LostLease, match="cell c: the lease .* was taken over"):
        mine.check()
    mine.release()
    assert json.loads(path.read_text())["token"] == "theirs"  # not removed by the loser


def test_the_heartbeat_renews_every_held_lease(tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(lease, "_HEARTBEAT", lease._Heartbeat())
    held = [lease.acquire(tmp_path / c / "lease.json") for c in ("a", "b")]
    first = [json.loads(h.path.read_text())["heartbeat"] for h in held]
    time.sleep(0.5)
    beats = [json.loads(h.path.read_text())["heartbeat"] for h in held]
    assert all(b > f for b, f in zip(beats, first, strict=True))
    for h in held:
        h.release()


def test_an_unreadable_lease_counts_as_live_until_its_file_is_old(tmp_path):
    path = tmp_path / "c" / "lease.json"
    path.parent.mkdir()
    path.write_text("{half a rec")
    with pytest.raises(lease.Owned, match="cannot be read"):
        lease.acquire(path)
    old = time.time() - lease.STALE_SECONDS - 1
    os.utime(path, (old, old))
    assert lease.acquire(path).took_over["unreadable"]


RACE = """
import sys, time
from pathlib import Path
from bpgrid import lease
start = float(sys.argv[2])
time.sleep(max(0, start - time.time()))
try:
    lease.acquire(Path(sys.argv[1]))
    print("won", flush=True)
    time.sleep(120)  # holds the lease until every other process has answered
except lease.Owned:
    print("refused", flush=True)
"""


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale"])
def test_of_many_processes_starting_at_once_exactly_one_owns_the_cell(tmp_path, stale):
    """Eight processes race for a missing lease, or for a stale one to take over."""
    path = tmp_path / "c" / "lease.json"
    if stale:
        write_lease(path, heartbeat=0.0)
    start = str(time.time() + 5)
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(path), start],
                              stdout=subprocess.PIPE, text=True) for _ in range(8)]
    try:
        outcomes = sorted(p.stdout.readline().strip() for p in procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert outcomes == ["refused"] * 7 + ["won"]


def test_me_names_this_process_and_its_log():
    owner = me()
    assert owner["pid"] == os.getpid() and owner["machine"] == machine()
    assert owner["started"] == process_start(os.getpid())
