"""How a sweep ended: each cell's status from its files, the counts, and what went wrong where.

A cell is ``skipped`` (finished before the sweep), ``done`` or ``diverged`` (its result), ``failed``
(no result: the error and log of its failure marker, or the log of the job that died holding
it), ``running`` (a live owner other than this sweep has it, or this sweep left it to its SLURM
job) or ``interrupted`` (this sweep was stopped before it ended; it resumes on a rerun).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bpgrid import lease
from bpgrid.backends.survey import Survey, cell_files
from bpgrid.cellfiles import read_failure, stored_result
from bpgrid.checkpoint import save_json

ORDER = ("done", "skipped", "diverged", "failed")  # always in the line, then any others


@dataclass
class Failure:
    """A cell that ended without a result: the log that says why, and the error when known."""

    cell_id: str
    log: str
    error: str | None = None


@dataclass
class Summary:
    """How a sweep ended: each cell's status, the counts, the failed cells with their logs, the
    cells others are running, the files set aside, and the signal that stopped it, if one did."""

    total: int
    counts: dict[str, int]
    statuses: dict[str, str] = field(default_factory=dict)
    failed: list[Failure] = field(default_factory=list)
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    running: dict[str, str] = field(default_factory=dict)  # cell id -> its owner, in words
    set_aside: list[str] = field(default_factory=list)
    migrated: list[str] = field(default_factory=list)
    stopped_by: int | None = None  # the signal that stopped the sweep
    detached: str | None = None  # what a sweep stopped while its jobs run says about them

    def line(self) -> str:
        extra = sorted(set(self.counts) - set(ORDER))
        parts = ", ".join(f"{self.counts.get(k, 0)} {k}" for k in (*ORDER, *extra))
        return f"sweep: {self.total} cells: {parts}"

    def save(self, folder: Path) -> Path:
        path = folder / "summary.json"
        save_json(path, asdict(self))
        return path


def summarise(configs: list[dict[str, Any]], found: Survey,
              given: Mapping[str, tuple[str, str | None]], sweep_id: str,
              stopped: str | None = None) -> Summary:
    """Each cell's status from its files. ``given``: the log of the job that had the cell and
    the error it returned, where known; ``stopped``: the status of unfinished cells when the
    sweep was stopped (``interrupted``, or ``running`` for jobs it detached from)."""
    counts: Counter[str] = Counter()
    out = Summary(len(configs), {}, set_aside=list(found.set_aside),
                  migrated=list(found.migrated))
    for config in configs:
        files = cell_files(config)
        cid = files.cell_id
        if cid in found.finished:
            status = "skipped"
        else:
            status = _status(files, found, given.get(cid, (None, None)), sweep_id, stopped, out)
        counts[status] += 1
        out.statuses[cid] = status
    out.counts = dict(counts)
    return out


def _status(files, found: Survey, job: tuple[str | None, str | None], sweep_id: str,
            stopped: str | None, out: Summary) -> str:
    cid = files.cell_id
    result, aside = stored_result(files)
    out.set_aside += aside
    if result is not None:
        out.set_aside += result.get("set_aside") or []
        out.train_seconds += result.get("train_seconds", 0.0)
        return result["status"]
    failure = read_failure(files)
    if failure and (failure.get("sweep_id") == sweep_id or cid in found.running):
        out.set_aside += failure.get("set_aside") or []
        out.failed.append(Failure(cid, failure.get("log") or "", failure.get("error")))
        return "failed"
    held = lease.read(files.lease)
    ours = held is not None and held.get("sweep_id") == sweep_id
    if held is not None and not ours and lease.alive(held):
        out.running[cid] = lease.describe(held)
        return "running"
    job_log, error = job
    if stopped and error is None:
        return stopped
    log = job_log or (held or {}).get("log") or "no job started it"
    out.failed.append(Failure(cid, log, error or ("its job ended without a result"
                                                  if job_log or held else None)))
    return "failed"
