"""bpgrid/census.py: each cell's state read from its files, writing nothing. Real leases: one
held by this process, one left by a process that has died."""

import json
import subprocess
import sys

from bpgrid import lease
from bpgrid.cellfiles import CellFiles
from bpgrid.census import census
from bpgrid.checkpoint import save_json


def folder(root, name: str, **files) -> CellFiles:
    cell = CellFiles(root / name)
    cell.folder.mkdir(parents=True)
    for attr, content in files.items():
        path = getattr(cell, attr)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return cell


def dead_owners_lease(path) -> None:
    """A process takes the lease and dies without giving it back."""
    code = ("import os, sys; from pathlib import Path; from bpgrid import lease; "
            "lease.acquire(Path(sys.argv[1]), sweep_id='old'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=120)


def test_every_state_is_told_from_the_files_and_nothing_is_written(tmp_path):
    cells = {
        "done": folder(tmp_path, "a", result={"status": "done", "best_val_error": 3.0}),
        "diverged": folder(tmp_path, "b", result={"status": "diverged"}),
        "failed": folder(tmp_path, "c", failure={"error": "boom", "sweep_id": "s1"}),
        "stopped": folder(tmp_path, "d", checkpoint="not read"),
        "missing": CellFiles(tmp_path / "e"),
        "running": folder(tmp_path, "f", failure={"error": "earlier", "sweep_id": "s0"}),
        "stale": folder(tmp_path, "g"),
        "unreadable": folder(tmp_path, "h", result="{cut sh"),
    }
    held = lease.acquire(cells["running"].lease, sweep_id="s1")
    dead_owners_lease(cells["stale"].lease)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    try:
        found = census(cells.values())
        after = sorted(p.name for p in tmp_path.rglob("*"))
    finally:
        held.release()
    states = {cid: c.state for cid, c in found.cells.items()}
    assert states == {"a": "done", "b": "diverged", "c": "failed", "d": "stopped",
                      "e": "missing", "f": "running", "g": "stale", "h": "missing"}
    assert found.cells["c"].failure["error"] == "boom"
    assert found.cells["g"].lease["sweep_id"] == "old"
    assert "result.json" in found.cells["h"].unreadable[0]
    assert after == before  # nothing set aside, nothing taken over


def test_a_sweep_counts_only_its_own_failures_and_its_dead_owners_as_failed(tmp_path):
    earlier = folder(tmp_path, "a", failure={"error": "boom", "sweep_id": "s0"})
    ours = folder(tmp_path, "b", failure={"error": "boom", "sweep_id": "s1"})
    died = folder(tmp_path, "c")
    dead_owners_lease(died.lease)
    other_sweep = census([earlier, ours, died], sweep_id="s1")
    assert {c: s.state for c, s in other_sweep.cells.items()} == {
        "a": "missing", "b": "failed", "c": "stale"}
    same_sweep = census([died], sweep_id="old")  # the owner that died was of this sweep
    assert same_sweep.cells["c"].state == "failed"


def test_a_reserved_lease_of_a_queued_task_is_queued(tmp_path):
    cell = folder(tmp_path, "a")
    record = {**lease.me(), "token": "t", "kind": lease.RESERVED, "job_id": None,
              "machine": "elsewhere", "since": 0, "heartbeat": 0}
    save_json(cell.lease, record)  # reserved on another machine, SLURM not asked: held
    assert census([cell]).cells["a"].state == "queued"


def test_finished_cells_already_known_are_not_read_again(tmp_path):
    cell = folder(tmp_path, "a", result={"status": "done"})
    known = census([cell]).cells
    cell.result.unlink()
    assert census([cell], known=known).cells["a"].state == "done"
    assert census([cell]).cells["a"].state == "missing"
