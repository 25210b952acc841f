"""The worker loop of local and debug sweeps: run every cell of a shared list no one else holds.

Workers share one ordered list of cells and claim each with an flock on ``<cell>/claim.lock``
(released by the kernel if the worker dies), so no cell is trained twice at once, not even by two
sweeps. The claim records the worker's log, so a cell its worker left unfinished points at it.
"""

from __future__ import annotations

import fcntl
from dataclasses import asdict
from pathlib import Path
from typing import Any

import submitit
import torch

from bpgrid.backends.base import cell_dir
from bpgrid.cell import run_cell


def work(configs: list[dict[str, Any]], threads: int | None = None) -> list[dict]:
    """Run every cell of the shared list that no other worker holds; their results."""
    if threads:
        torch.set_num_threads(threads)
    results = []
    for config in configs:
        handle = _claim(cell_dir(config) / "claim.lock")
        if handle is None:
            continue
        try:
            results.append(asdict(run_cell(config)))
        finally:
            handle.close()
    return results


def _claim(path: Path):
    """An open, exclusively flocked file, or None if another process holds the cell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the cell's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(_job_log())  # so that a dead worker's cell points at the worker's log
    handle.flush()
    return handle


def _job_log() -> str:
    try:
        return str(submitit.JobEnvironment().paths.stderr)
    except RuntimeError:  # not inside a submitit job
        return "the sweep's own output"
