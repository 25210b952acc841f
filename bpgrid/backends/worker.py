"""The worker loop of local and debug sweeps: every cell of a shared list of fused arrays that no
one else holds.

Workers share one ordered list of arrays. run_array takes each cell's lease (bpgrid/lease.py), so
no cell is trained twice at once, not even by two sweeps, and a cell another owner holds is
passed over (the rest of its array trains without it). A cell that failed in this sweep is not
tried again by the next worker, nor is one whose worker died holding it. A local worker stops
cleanly on SIGINT, SIGTERM or SIGHUP (its cells are left to resume), and stops by itself when its
sweep is gone, however the sweep ended.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import torch

from bpgrid import shutdown
from bpgrid.cell import run_array
from bpgrid.shutdown import Interrupted, die_with, stop_on_signals


def work(arrays: list[list[dict[str, Any]]], threads: int | None = None) -> list[dict]:
    """Run every array of the shared list, each of its cells that no other owner holds; their
    results."""
    if threads:
        torch.set_num_threads(threads)
    results = []
    for array in arrays:
        shutdown.check()
        results += [asdict(r) for r in run_array(array) if r.status != "running"]
    return results


def worker(arrays: list[list[dict[str, Any]]], threads: int, sweep: tuple[int, int | None]
           ) -> list[dict]:
    """``work`` in a worker process of the sweep ``sweep`` (its pid and start time)."""
    stop_on_signals()
    die_with(sweep)
    try:
        return work(arrays, threads)
    except Interrupted as stop:
        print(f"worker: {stop}; its cells are left to resume", file=sys.stderr, flush=True)
        return []
