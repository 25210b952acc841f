"""A sweep's cells packed into fused arrays: ``grid.fuse`` and ``grid.max_array``.

``fuse: off`` gives arrays of one (every cell trains alone). ``fuse: auto`` (the default) groups
the cells to run by structure (bpgrid/arrays/structure.py) and packs each group into arrays of at
most ``max_array`` members of nearly equal sizes. ``max_array: null`` keeps arrays modest where
the cells train on a CPU (CPU_MAX_ARRAY: beyond it an array saves little more per-op overhead and
a dead worker loses more) and allows GPU_MAX_ARRAY where they train on a GPU; there each worker
splits an array further to fit its GPU's free memory (bpgrid/arrays/memory.py). Cells resuming at
different epochs may share an array here: the worker trains them as one array per epoch they
start at.
"""

from __future__ import annotations

from typing import Any

from bpgrid.arrays.structure import pack

CPU_MAX_ARRAY = 16
GPU_MAX_ARRAY = 64


def max_array(grid: dict[str, Any], on_gpu: bool) -> int:
    """The most cells in one array: 1 when fusing is off, else ``grid.max_array`` or the
    default for the device."""
    if grid.get("fuse", "auto") in ("off", False):
        return 1
    return grid.get("max_array") or (GPU_MAX_ARRAY if on_gpu else CPU_MAX_ARRAY)


def arrays(cells: list[dict[str, Any]], gpus: bool) -> list[list[dict[str, Any]]]:
    """The cells as arrays, those of one dataset next to each other (``pack``). ``gpus``: the
    backend runs its cells on GPUs where their ``device`` is ``auto``."""
    if not cells:
        return []
    device = str(cells[0]["device"])
    on_gpu = device.startswith("cuda") or (device == "auto" and gpus)
    k = max_array(cells[0]["grid"], on_gpu)
    return [[cells[i] for i in members] for members in pack(cells, k)]
