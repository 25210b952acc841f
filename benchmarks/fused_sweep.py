"""A grid through the real sweep, fused (``grid.fuse=auto``) against unfused (``grid.fuse=off``).

    python benchmarks/fused_sweep.py [--repeats 1] [--workers 2] [-- extra sweep overrides]
    python benchmarks/fused_sweep.py -- dataset=mnist1d schedule.epochs=65 +grid=experiment_a

Runs ``python -m bpgrid.sweep +grid=quick hydra/launcher=local`` (or the grid given) twice per
repeat in fresh temporary folders, fused and unfused alternately (which goes first alternates
too), and prints both wall times, their ratio and the machine's load average. Then checks that
the two tables agree: every cell's status, and its best error, compared cell by cell (the largest
difference is printed). ``--unfused-subset N`` runs the unfused side on the first N cells' LR
scales only and extrapolates its time to the whole grid by the cell count (labelled so).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sweep(fuse: str, args: argparse.Namespace, extra: list[str]) -> tuple[float, dict]:
    """One sweep in a fresh folder: its wall time and each cell's result."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        grid = [a for a in extra if a.startswith("+grid=")] or ["+grid=quick"]
        cmd = [sys.executable, "-m", "bpgrid.sweep", *grid, "hydra/launcher=local",
               f"hydra.launcher.workers={args.workers}", f"grid.fuse={fuse}",
               f"tracking.uri=sqlite:///{root}/mlflow.db", f"cells_dir={root}/cells",
               f"tracking.artifacts={root}/artifacts", f"hydra.sweep.dir={root}/multirun",
               "progress=never", *[a for a in extra if not a.startswith("+grid=")]]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"sweep failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        results = {p.parent.name: json.loads(p.read_text())
                   for p in (root / "cells").glob("*/result.json")}
    return wall, results


def compare(fused: dict, unfused: dict) -> str:
    """How the two tables differ: cells of one side only, statuses, the largest best-error
    difference."""
    common = fused.keys() & unfused.keys()
    statuses = [c for c in common if fused[c]["status"] != unfused[c]["status"]]
    diffs = sorted((abs((fused[c]["best_val_error"] or 0) - (unfused[c]["best_val_error"] or 0)),
                    c) for c in common)
    worst, cid = diffs[-1] if diffs else (0.0, "-")
    return (f"{len(common)} cells in both, {len(fused.keys() ^ unfused.keys())} in one only, "
            f"{len(statuses)} with different statuses, {sum(d > 0 for d, _ in diffs)} with "
            f"different best errors, the largest {worst:.4f} points (cell {cid}: "
            f"{fused.get(cid, {}).get('cell_dir', '')})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--unfused-subset", default=None,
                        help="LR scales (a,b) the unfused side runs; its time is extrapolated")
    parser.add_argument("overrides", nargs="*", help="more sweep overrides")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, {args.workers} local workers, overrides: "
          f"{' '.join(args.overrides) or '(none)'}; load average before: {os.getloadavg()}")
    walls: dict[str, list[float]] = {"auto": [], "off": []}
    tables: dict[str, dict] = {}
    for r in range(args.repeats):
        for fuse in (("auto", "off") if r % 2 == 0 else ("off", "auto")):
            extra = list(args.overrides)
            if fuse == "off" and args.unfused_subset:
                extra.append(f"lr_scale={args.unfused_subset}")
            wall, results = sweep(fuse, args, extra)
            walls[fuse].append(wall)
            tables[fuse] = results
            print(f"  grid.fuse={fuse:4s} {len(results):4d} cells  {wall:8.1f} s  load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    fused = min(walls["auto"])
    n_fused, n_off = len(tables["auto"]), len(tables["off"])
    unfused = min(walls["off"]) * n_fused / n_off
    label = (f" (extrapolated from {n_off} cells by the cell count)" if n_off != n_fused else "")
    print(f"fused {fused:.1f} s, unfused {unfused:.1f} s{label}: fused is "
          f"{unfused / fused:.2f}x faster (best of {args.repeats})")
    print(f"tables: {compare(tables['auto'], tables['off'])}")


if __name__ == "__main__":
    main()
