"""A sweep's live progress: its cells done, diverged, failed, running and left, elapsed and ETA.

Counted from the cells' files (bpgrid/census.py) by a thread of the sweep, so every launcher is
counted the same way, SLURM's array tasks included, and the counts are cells, not jobs. On a
terminal it is one line that rich redraws in place; otherwise (a log file, SLURM's output) a
plain line every ``grid.progress_seconds``. The ETA is this sweep's time per finished cell times
the cells left: the cells run side by side, so the time per cell already counts the workers.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import timedelta
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bpgrid.backends.survey import cell_files
from bpgrid.census import FINISHED, census

POLL_SECONDS = 2.0  # between two looks at the cells while the line is on a terminal
LEFT = ("missing", "queued", "stale", "stopped")  # not yet run in this sweep


def clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


class SweepProgress:
    """``with SweepProgress(configs, sweep_id, every):`` shows the cells' progress until the
    block ends, then their final counts; ``poke()`` looks at the cells at once."""

    def __init__(self, configs: list[dict[str, Any]], sweep_id: str, every: float = 10.0,
                 stream: TextIO | None = None) -> None:
        self.files = list({f.cell_id: f for f in map(cell_files, configs)}.values())
        self.sweep_id, self.every = sweep_id, every
        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.terminal = self.console.is_terminal and not self.console.is_dumb_terminal
        self.finished: dict = {}  # cell id -> its final state, not read again
        self.counts: dict[str, int] = {}
        self.finished_before = 0
        self.start = time.monotonic()
        self.wake, self.done = threading.Event(), threading.Event()
        self.bar: Progress | None = None
        self.printed = ""  # the last line a log got

    def __enter__(self) -> SweepProgress:
        self._look()
        self.finished_before = len(self.finished)
        if self.terminal:
            self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("cells: {task.fields[counts]}"), TimeElapsedColumn(),
                                TextColumn("ETA {task.fields[eta]}"), console=self.console,
                                refresh_per_second=2)
            self.task = self.bar.add_task("sweep", total=len(self.files), **self._fields())
            self.bar.start()
        self.thread = threading.Thread(target=self._run, name="bpgrid-progress", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.wake.set()
        self.thread.join()
        self._look()
        self._show()
        if self.bar is not None:
            self.bar.stop()

    def poke(self, *_: Any) -> None:
        self.wake.set()

    def _run(self) -> None:
        wait = POLL_SECONDS if self.terminal else self.every
        while not self.done.is_set():
            self.wake.wait(wait)
            self.wake.clear()
            if self.done.is_set():
                return
            try:
                self._look()
            except Exception as err:  # a bad moment of a file system: the next look tries again
                self.console.print(f"sweep: could not count the cells: {err}")
                continue
            self._show()

    def _look(self) -> None:
        found = census(self.files, self.sweep_id, self.finished)
        self.finished.update({cid: c for cid, c in found.cells.items() if c.state in FINISHED})
        counts = found.counts()
        self.counts = {"done": counts["done"], "diverged": counts["diverged"],
                       "failed": counts["failed"], "running": counts["running"],
                       "left": sum(counts[k] for k in LEFT)}

    def _fields(self) -> dict[str, str]:
        c = self.counts
        counts = ", ".join(f"{c[k]} {k}" for k in ("done", "diverged", "failed", "running",
                                                    "left"))
        ended_now = c["done"] + c["diverged"] + c["failed"] - self.finished_before
        elapsed = time.monotonic() - self.start
        eta = clock(elapsed / ended_now * (c["running"] + c["left"])) if ended_now > 0 else "?"
        return {"counts": counts, "eta": eta}

    def line(self) -> str:
        """The progress as one plain line (what a log gets)."""
        c, fields = self.counts, self._fields()
        ended = c["done"] + c["diverged"] + c["failed"]
        return (f"sweep: {ended}/{len(self.files)} cells: {fields['counts']}; elapsed "
                f"{clock(time.monotonic() - self.start)}, ETA {fields['eta']}")

    def _show(self) -> None:
        if self.bar is None:
            line = self.line()
            if line != self.printed:  # a job's end and the clock can fall in one second
                print(line, file=self.console.file, flush=True)
                self.printed = line
            return
        c = self.counts
        self.bar.update(self.task, completed=c["done"] + c["diverged"] + c["failed"],
                        **self._fields())
