"""One cell as a member of an array: its config, files, lease, MLflow run, history and result.

bpgrid/cell.py takes cells and trains them as arrays; what belongs to each cell alone is here: its
result, its failure (marker, FAILED run, journal), a step of its own whose error ends it alone,
and what a stop does to it.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bpgrid import __version__, shutdown
from bpgrid.cellfiles import CellFiles, journal, stored_result, write_failure
from bpgrid.checkpoint import save_json
from bpgrid.config import cell_id
from bpgrid.lease import Lease, LostLease
from bpgrid.tracking import Tracker


@dataclass
class CellResult:
    """What a cell reports (the JSON line ``python -m bpgrid.train`` ends with)."""

    cell_id: str
    status: str  # done | diverged | failed | running (another live owner has the cell)
    best_val_error: float | None
    best_epoch: int | None
    final_val_error: float | None
    epochs_run: int
    resumed_from_epoch: int | None
    cached: bool = False  # True when the stored result of a finished cell was returned
    run_id: str | None = None
    train_seconds: float = 0.0  # time spent in epochs, summed over all starts of the cell
    cell_seconds: float = 0.0  # its last start's whole time (setup, logging too): its
    # array's time until it ended, shared equally among the array's members
    cell_dir: str = ""
    error: str | None = None
    diverged_because: str | None = None
    set_aside: list[str] = field(default_factory=list)  # unreadable files moved aside
    run_ended: bool = False  # the MLflow run was ended after the result was stored
    owner: str | None = None  # who has the cell, when it is running elsewhere

    @classmethod
    def stored(cls, data: dict[str, Any], **changes) -> CellResult:
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in known}, **changes})


@functools.cache
def code_version() -> str:
    """The git commit of the package, or its version when not in a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip() or __version__
    except OSError:
        return __version__


class Member:
    """A cell in one call of run_array: its config, files, lease, run, epochs and result."""

    def __init__(self, c: dict[str, Any]) -> None:
        self.c, self.cid = c, cell_id(c)
        self.files = CellFiles(Path(c["cells_dir"]) / self.cid)
        self.sweep = str(c["grid"].get("sweep_id", ""))
        self.aside: list[str] = []
        self._tracker: Tracker | None = None
        self.start = time.perf_counter()
        self.token: str | None = None  # of the lease, once held
        self.lease: Lease | None = None
        self.checkpoint: dict | None = None  # the one it resumes from
        self.run_id: str | None = None
        self.history: list[dict[str, float]] = []
        self.logged: set[int] = set()  # epochs its run holds
        self.unlogged: list[dict[str, float]] = []  # epochs checkpointed, not yet in its run
        self.train_seconds = 0.0
        self.chance: float | None = None
        self.diverged: str | None = None
        self.share = 1  # members of the array it trains in
        self.outcome: CellResult | None = None  # its result, once it has ended

    @property
    def start_epoch(self) -> int:
        return len(self.checkpoint["history"]) + 1 if self.checkpoint else 1

    @property
    def open(self) -> bool:
        """Its lease is held and it has not ended."""
        return self.lease is not None and not self.lease.lost and self.outcome is None

    def end(self, result: CellResult) -> None:
        """The cell has ended with this result: its lease goes back now, and its end is told in
        the log unless it was only looked up."""
        self.outcome = result
        if self.lease is not None:
            self.lease.release()
        if result.cached:
            return
        seconds = f"{time.perf_counter() - self.start:.1f} s"
        if self.share > 1:  # the array's time until this member ended, not the member's own
            seconds += f" in an array of {self.share}"
        if result.status in ("done", "diverged"):
            best = ("no finite val error" if result.best_val_error is None else
                    f"best val error {result.best_val_error:.2f}% (epoch {result.best_epoch})")
            why = f" ({result.diverged_because})" if result.diverged_because else ""
            self.say(f"{result.status}{why}, {best}, {result.epochs_run} epochs, {seconds}")
        else:
            error = (result.error or "").strip().splitlines()
            self.say(f"{result.status} after {seconds}: {error[0] if error else '?'}")

    def say(self, what: str) -> None:
        """A line in the log of the process that runs the cell (a worker's, a SLURM task's): the
        cell by its method, dataset, LR scale and seed, and what became of it."""
        c = self.c
        print(f"cell {self.cid} (method={(c.get('method') or {}).get('name', '-')} "
              f"dataset={c['dataset']['name']} lr_scale={c['lr_scale']:g} seed={c['seed']}): "
              f"{what}", file=sys.stderr, flush=True)

    def flush(self) -> None:
        """Its epochs not yet in its run, in one write."""
        if self.unlogged:
            self.tracker.log_epochs(self.run_id, self.unlogged)
            self.logged.update(int(h["epoch"]) for h in self.unlogged)
            self.unlogged = []

    def flush_if_possible(self) -> None:
        """``flush`` as far as the store allows: the epochs are in its checkpoint, and its run
        takes them up when the cell resumes."""
        try:
            self.flush()
        except Exception:
            pass

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            t = self.c["tracking"]
            self._tracker = Tracker(t["uri"], t["experiment"], t.get("artifacts"))
        return self._tracker

    def result(self, status: str, **values) -> CellResult:
        return CellResult(self.cid, status, None, None, None, values.pop("epochs_run", 0),
                          values.pop("resumed_from_epoch", None), cell_dir=str(self.files.folder),
                          set_aside=self.aside, **values)

    def finished(self) -> CellResult | None:
        """The stored result, its MLflow run ended if a kill came between the two."""
        stored, moved = stored_result(self.files)
        self.aside += moved
        if stored is None:
            return None
        if not stored.get("run_ended") and stored.get("run_id"):
            self.tracker.close(stored["run_id"])
            stored["run_ended"] = True
            save_json(self.files.result, stored)
        return CellResult.stored(stored, cached=True, set_aside=self.aside)

    def failed(self, err: BaseException | str) -> CellResult:
        """The cell's failed result; its run FAILED and its failure marker written, as far as
        the store and the disk still allow."""
        run_id, checkpoint = self.run_id, self.checkpoint
        error = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        if not isinstance(err, str):
            print(f"bpgrid: cell {self.cid} failed:\n"
                  + "".join(traceback.format_exception(err)), file=sys.stderr)
        if run_id is not None:
            self.flush_if_possible()
            try:
                self.tracker.fail(run_id, error if isinstance(err, str)
                                  else "".join(traceback.format_exception(err)))
            except Exception as also:
                error += f" (and its MLflow run could not be marked FAILED: {also})"
        write_failure(self.files, error, self.sweep, self.aside)
        journal(self.files, "end", token=self.token, status="failed", error=error[-500:])
        before = len(checkpoint["history"]) if checkpoint else 0  # history holds them once resumed
        return self.result("failed", error=error, run_id=run_id,
                           epochs_run=max(len(self.history), before),
                           resumed_from_epoch=checkpoint["epoch"] if checkpoint else None)


def as_stop(err: BaseException) -> BaseException | None:
    """The stop this exception is (a signal's, or any error while a signal asked to stop,
    such as one torch made of it), or None if it is the cell's own failure."""
    if not isinstance(err, Exception):
        return err
    return shutdown.requested()


def alone(cell: Member, action, *args) -> None:
    """One cell's own step (its files, its run); an error ends this cell alone: ``failed``, or
    ``running`` when another owner has taken it (and its run) over."""
    try:
        action(cell, *args)
    except LostLease as err:
        journal(cell.files, "end", token=cell.token, status="lost", error=str(err))
        cell.end(cell.result("running", owner="the owner that took it over", error=str(err),
                             run_id=cell.run_id))
    except Exception as err:
        if (stop := as_stop(err)) is not None:
            raise stop from err
        cell.end(cell.failed(err))


def stopped(cell: Member, keep: bool) -> None:
    """A stop came while the cell was held: its run KILLED (resumed on a rerun), its lease kept
    for its SLURM job (``keep``: a requeue) or given back."""
    if cell.run_id is not None:
        cell.flush_if_possible()
        try:
            cell.tracker.stop(cell.run_id)
        except Exception:
            pass  # a RUNNING run is resumed all the same
    journal(cell.files, "end", token=cell.token, status="stopped")
    cell.say("stopped; it resumes from its checkpoint")
    if keep:
        cell.lease.keep_for_job()
