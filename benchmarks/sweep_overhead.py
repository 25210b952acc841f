"""A sweep's cost against its training: the `quick` grid through the local launcher.

    python benchmarks/sweep_overhead.py [--workers 2] [--epochs 10] [-- extra overrides]

Runs `python -m bpgrid.sweep +grid=quick hydra/launcher=local` in a fresh temporary folder and
reads every cell's own timings (result.json): train_seconds (its epochs) and cell_seconds (all of
run_cell: data loading, model build, MLflow logging, artifacts). Prints, per cell:
- in-cell overhead = cell_seconds - train_seconds
- orchestration = (wall x workers - sum cell_seconds) / cells: process start, imports, Hydra
  composition and validation, dispatch, waiting for the slowest worker
Target: total overhead per cell < max(1 s, 10 % of the cell's training time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("overrides", nargs="*", help="more sweep overrides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cmd = [sys.executable, "-m", "bpgrid.sweep", "+grid=quick", "hydra/launcher=local",
               f"hydra.launcher.workers={args.workers}", f"schedule.epochs={args.epochs}",
               f"tracking.uri=sqlite:///{root}/mlflow.db", f"cells_dir={root}/cells",
               f"tracking.artifacts={root}/artifacts", f"hydra.sweep.dir={root}/multirun",
               "progress=never", *args.overrides]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"sweep failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        results = [json.loads(p.read_text()) for p in (root / "cells").glob("*/result.json")]
    n = len(results)
    train = sum(r["train_seconds"] for r in results)
    cell = sum(r["cell_seconds"] for r in results)
    in_cell = (cell - train) / n
    orchestration = (wall * args.workers - cell) / n
    overhead = in_cell + orchestration
    mean_train = train / n
    target = max(1.0, 0.1 * mean_train)
    print(f"quick grid: {n} cells of {args.epochs} epochs, {args.workers} local workers, "
          f"{os.cpu_count()} CPUs")
    print(f"  sweep wall time              {wall:8.1f} s")
    print(f"  sum of training time         {train:8.1f} s  ({train / (wall * args.workers):.0%} "
          f"of wall x workers)")
    print(f"  training per cell            {mean_train:8.3f} s  (median "
          f"{statistics.median(r['train_seconds'] for r in results):.3f} s)")
    print(f"  in-cell overhead per cell    {in_cell:8.3f} s  (data, model, MLflow, artifacts)")
    print(f"  orchestration per cell       {orchestration:8.3f} s  (processes, imports, Hydra, "
          f"dispatch, idle)")
    print(f"  overhead per cell            {overhead:8.3f} s  target < {target:.2f} s: "
          f"{'ok' if overhead < target else 'OVER'}")


if __name__ == "__main__":
    main()
