"""Kill workers and the sweep at random during a grid, then check every cell finished exactly once.

    python benchmarks/chaos.py [--kills 10] [--workers 3] [--epochs 150] [--seed 0]

Runs 16 cells of the `quick` grid (SGD, BM, uSF+BN+BM, frSF+BN+BM on digits and MNIST-1D at LR
x10 and x1) through `python -m bpgrid.sweep hydra/launcher=local` in a fresh temporary folder.
While it runs, every few seconds it kills one thing, chosen at random: a worker (SIGKILL), or the
sweep itself (SIGKILL, SIGTERM, SIGINT or SIGHUP; then it checks that none of the sweep's
processes outlives it, and starts the sweep again). After ``--kills`` kills it reruns the sweep
until one run ends with every cell finished, and checks:
- one result per cell, done or diverged, with every epoch;
- one MLflow run per cell, FINISHED, each epoch of its result's val_error logged once (epochs
  that reach the run in batches, and a kill between two batches, lose none);
- no two owners at once: each cell's attempts (its attempts.jsonl, each owner's start and end,
  or the kill that ended it) never overlap;
- no process outlived a killed sweep.
Prints these checks and the figures: kills by kind, sweep runs needed, attempts per cell.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bpgrid.backends.local import descendants  # noqa: E402
from bpgrid.jobs import process_alive, process_start  # noqa: E402
from bpgrid.shutdown import GRACE_SECONDS  # noqa: E402

AXES = ["method=sgd,bm,usf_bn_bm,frsf_bn_bm", "dataset=digits,mnist1d", "lr_scale=10,1"]
SWEEP_SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


def sweep_cmd(root: Path, workers: int, epochs: int) -> list[str]:
    return [sys.executable, "-m", "bpgrid.sweep", "+grid=quick", *AXES,
            f"schedule.epochs={epochs}", "hydra/launcher=local",
            f"hydra.launcher.workers={workers}", f"tracking.uri=sqlite:///{root}/mlflow.db",
            f"tracking.artifacts={root}/artifacts", f"cells_dir={root}/cells",
            f"hydra.sweep.dir={root}/multirun", "progress=never", "device=cpu"]


def workers_of(pid: int) -> list[int]:
    """The sweep's worker processes (submitit's, running the cells)."""
    out = []
    for child in descendants(pid):
        try:
            if "submitit.core._submit" in Path(f"/proc/{child}/cmdline").read_text():
                out.append(child)
        except OSError:
            pass
    return out


def chaos(root: Path, args: argparse.Namespace, rng: random.Random) -> dict:
    """Start the sweep, kill things ``args.kills`` times; what was killed when."""
    log = open(root / "sweeps.log", "a")  # noqa: SIM115 - the sweeps' output, for a post mortem
    kills: list[tuple[float, int, str]] = []  # time, pid, what
    died: dict[int, float] = {}  # processes of killed sweeps: when they were seen dead
    orphans, runs = 0, 0
    proc = None
    while len(kills) < args.kills:
        if proc is None or proc.poll() is not None:
            proc = subprocess.Popen(sweep_cmd(root, args.workers, args.epochs), cwd=root,
                                    stdout=log, stderr=log)
            runs += 1
        time.sleep(rng.uniform(2.0, args.pause))
        if proc.poll() is not None:
            continue  # it finished meanwhile: start it again (nothing left to do or a rerun)
        workers = workers_of(proc.pid)
        if workers and rng.random() < 0.6:
            victim = rng.choice(workers)
            with_start = process_start(victim)
            if process_alive(victim, with_start):
                subprocess.run(["kill", "-KILL", str(victim)], check=False)
                kills.append((time.time(), victim, "worker SIGKILL"))
            continue
        how = rng.choice(SWEEP_SIGNALS)
        tree = [(p, process_start(p)) for p in descendants(proc.pid)]
        proc.send_signal(how)
        kills.append((time.time(), proc.pid, f"sweep {signal.Signals(how).name}"))
        proc.wait()
        deadline = time.time() + GRACE_SECONDS + 15
        while time.time() < deadline:
            for p in tree:  # when each died: the end of an attempt it left without an end line
                if p[0] not in died and not process_alive(*p):
                    died[p[0]] = time.time()
            if len(died.keys() & {p for p, _ in tree}) == len(tree):
                break
            time.sleep(0.2)
        orphans += sum(process_alive(*p) for p in tree)
    if proc is not None and proc.poll() is None:
        proc.wait()  # let the last one end on its own
    for _ in range(10):
        runs += 1
        done = subprocess.run(sweep_cmd(root, args.workers, args.epochs), cwd=root,
                              stdout=log, stderr=log)
        if done.returncode == 0:
            break
    return {"kills": kills, "died": died, "orphans": orphans, "sweep_runs": runs}


def overlaps(cell: Path, killed: dict[int, float]) -> int:
    """Pairs of this cell's attempts whose time spans overlap (two owners at once)."""
    lines = [json.loads(line) for line in (cell / "attempts.jsonl").read_text().splitlines()]
    starts = {a["token"]: a for a in lines if a["event"] == "start"}
    ends = {a["token"]: a["time"] for a in lines if a["event"] == "end" and a.get("token")}
    spans = []
    for token, start in starts.items():
        end = ends.get(token, killed.get(start["pid"], float("inf")))
        spans.append((start["time"], end))
    spans.sort()
    return sum(1 for (_, end), (start, _) in zip(spans, spans[1:], strict=False) if start < end)


def check(root: Path, epochs: int, kills: list, died: dict[int, float]) -> dict:
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs: dict[str, list] = {}
    for run in client.search_runs([client.get_experiment_by_name("quick").experiment_id],
                                  max_results=1000):
        if "cell_id" in run.data.tags:  # not a sweep's parent run
            runs.setdefault(run.data.tags["cell_id"], []).append(run)
    cells = sorted(p for p in (root / "cells").iterdir() if p.is_dir())
    results = {c.name: json.loads((c / "result.json").read_text())
               for c in cells if (c / "result.json").exists()}
    killed = {**died, **{pid: t for t, pid, _ in kills}}
    bad_steps, gaps = 0, 0
    for cid, cell_runs in runs.items():
        for run in cell_runs:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_error")]
            bad_steps += len(steps) != len(set(steps))
            ran = results.get(cid, {}).get("epochs_run", 0)
            gaps += set(steps) != set(range(1, ran + 1))
    attempts = Counter(sum(1 for line in (c / "attempts.jsonl").read_text().splitlines()
                           if json.loads(line)["event"] == "start") for c in cells)
    return {
        "cells": len(cells),
        "results": len(results),
        "results done/diverged with every epoch": sum(
            r["status"] in ("done", "diverged")
            and (r["epochs_run"] == epochs or r["status"] == "diverged")
            for r in results.values()),
        "cells with exactly one MLflow run, FINISHED": sum(
            len(r) == 1 and r[0].info.status == "FINISHED" for r in runs.values()),
        "runs with an epoch logged twice": bad_steps,
        "runs missing an epoch of their result": gaps,
        "overlapping owners": sum(overlaps(c, killed) for c in cells),
        "attempts per cell": dict(sorted(attempts.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--pause", type=float, default=8.0, help="most seconds between kills")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        happened = chaos(root, args, rng)
        wall = time.perf_counter() - start
        report = check(root, args.epochs, happened["kills"], happened["died"])
    kinds = Counter(what for _, _, what in happened["kills"])
    print(f"chaos: 16 cells x {args.epochs} epochs, {args.workers} local workers, seed "
          f"{args.seed}: {len(happened['kills'])} kills ({dict(sorted(kinds.items()))}), "
          f"{happened['sweep_runs']} sweep runs, {wall:.0f} s")
    print(f"  processes that outlived a killed sweep: {happened['orphans']}")
    for key, value in report.items():
        print(f"  {key}: {value}")
    ok = (happened["orphans"] == 0 and report["cells"] == report["results"] == 16
          and report["results done/diverged with every epoch"] == 16
          and report["cells with exactly one MLflow run, FINISHED"] == 16
          and report["runs with an epoch logged twice"] == 0
          and report["runs missing an epoch of their result"] == 0
          and report["overlapping owners"] == 0)
    print("every cell finished exactly once: " + ("yes" if ok else "NO"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
