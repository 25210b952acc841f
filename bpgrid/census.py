"""What the cells' files say now, read only: each cell done, diverged, failed, running, queued,
stale, stopped or missing.

The cells folder is the one source that every launcher writes and every machine sharing it can
read, so a local sweep, a SLURM array and ``bpgrid.train`` are counted the same way, from any
process. Nothing here writes: an unreadable file is reported, not set aside (a rerun does that,
bpgrid/backends/survey.py). Liveness is ``lease.alive``'s, with one ``squeue`` call for every
SLURM job named in the leases.

    done, diverged  a result (result.json)
    running         a live owner holds its lease (queued: a lease reserved for a pending task)
    failed          a failure marker (failed.json) and no result, nor a live owner
    stale           a lease whose owner is dead (a rerun takes it over)
    stopped         a checkpoint and nothing else: stopped part-way, resumes on a rerun
    missing         never started
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from bpgrid import lease
from bpgrid.cellfiles import CellFiles
from bpgrid.checkpoint import UnreadableFile, read_json
from bpgrid.jobs import slurm_states

STATES = ("done", "diverged", "failed", "running", "queued", "stale", "stopped", "missing")
FINISHED = ("done", "diverged")


@dataclass
class CellState:
    """One cell as its files show it; ``lease`` is its owner's record (live or stale)."""

    cell_id: str
    state: str
    result: dict | None = None
    failure: dict | None = None
    lease: dict | None = None
    unreadable: list[str] = field(default_factory=list)  # files that could not be read


@dataclass
class Census:
    """Every cell's state, by cell id, and the SLURM states of the jobs their leases name."""

    cells: dict[str, CellState]
    slurm: dict[str, str] | None = None  # job id -> state; None when SLURM cannot be asked

    def counts(self) -> Counter[str]:
        return Counter(c.state for c in self.cells.values())


def _read(path, unreadable: list[str]) -> dict | None:
    try:
        return read_json(path)
    except UnreadableFile as err:
        unreadable.append(str(err))
        return None


def census(folders: Iterable[CellFiles], sweep_id: str | None = None,
           known: dict[str, CellState] | None = None) -> Census:
    """The state of each cell. ``sweep_id``: count as failed only this sweep's failures (and
    its owners that died); an earlier sweep's failed cell is ``missing`` until it is tried.
    ``known``: states that cannot change any more (finished cells), reused without reading."""
    cells: dict[str, CellState] = {}
    owned = []
    for files in folders:
        if known and files.cell_id in known:
            cells[files.cell_id] = known[files.cell_id]
            continue
        cell = CellState(files.cell_id, "missing")
        cells[files.cell_id] = cell
        cell.result = _read(files.result, cell.unreadable)
        if cell.result is not None and cell.result.get("status") in FINISHED:
            cell.state = cell.result["status"]
            continue
        cell.failure = _read(files.failure, cell.unreadable)
        if cell.failure is not None and sweep_id and cell.failure.get("sweep_id") != sweep_id:
            cell.failure = None
        cell.lease = lease.read(files.lease)
        if cell.lease is not None:
            owned.append(cell)
        elif cell.failure is not None:
            cell.state = "failed"
        elif files.checkpoint.exists():
            cell.state = "stopped"
    jobs = slurm_states(c.lease["job_id"] for c in owned if c.lease.get("job_id"))
    for cell in owned:
        cell.state = _held(cell, jobs, sweep_id)
    return Census(cells, jobs)


def _held(cell: CellState, jobs: dict[str, str] | None, sweep_id: str | None) -> str:
    """The state of a cell whose lease is there: its owner's, alive or dead."""
    held = cell.lease
    if lease.alive(held, jobs):  # a reserved lease: its task has not started (or is requeued)
        return "queued" if held.get("kind") == lease.RESERVED else "running"
    if cell.failure is not None or (sweep_id and held.get("sweep_id") == sweep_id):
        return "failed"  # an owner of this sweep died holding it
    return "stale"
