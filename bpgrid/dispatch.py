"""Dispatch a grid's cells through submitit: in-process (debug), local workers, or SLURM.

A cell never takes another down: run_cell turns exceptions into a failed result, and a job that
dies (OOM kill, node loss, scancel) only loses the cells it had not finished, which the summary
reports as failed with the job's log. Finished cells (result.json) are skipped before launching;
unfinished ones resume from their checkpoints. Local workers share one ordered list of cells and
claim each with an flock on ``<cell>/claim.lock`` (released by the kernel if the worker dies), so
no cell is trained twice at once, not even by two sweeps.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import submitit
import torch

from bpgrid import mps
from bpgrid.cell import run_cell
from bpgrid.checkpoint import load_json, save_json
from bpgrid.config import cell_id
from bpgrid.data.registry import EMBEDDED
from bpgrid.tracking import prepare_store

KINDS = ("debug", "local", "slurm")
#: Summaries of the sweeps this process ran (None for a dry run), read by ``bpgrid.sweep``.
LAST_SWEEP: list[Summary | None] = []
SLURM_KEYS = {"partition": "slurm_partition", "account": "slurm_account",
              "qos": "slurm_qos", "array_parallelism": "slurm_array_parallelism",
              "additional_parameters": "slurm_additional_parameters", "setup": "slurm_setup"}


@dataclass
class Summary:
    """How a sweep ended: counts by status, and the failed cells with their logs."""

    total: int
    counts: dict[str, int]
    failed: list[dict[str, str]] = field(default_factory=list)
    wall_seconds: float = 0.0
    train_seconds: float = 0.0

    def line(self) -> str:
        order = ("done", "skipped", "diverged", "failed")
        parts = ", ".join(f"{self.counts.get(k, 0)} {k}" for k in order)
        return f"sweep: {self.total} cells: {parts}"


def cell_dir(config: dict) -> Path:
    return Path(config["cells_dir"]) / cell_id(config)


def preflight(configs: list[dict]) -> None:
    """Fail before launching when a dataset's files are missing and may not be downloaded."""
    for ds in {json.dumps(c["dataset"], sort_keys=True) for c in configs}:
        ds = json.loads(ds)
        if ds["name"] in EMBEDDED or ds.get("download"):
            continue
        if not Path(ds["root"]).exists():
            raise FileNotFoundError(
                f"dataset {ds['name']}: no directory {ds['root']}. Put the files there, set "
                f"dataset.root=PATH, or pass dataset.download=true where torchvision can fetch it")


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


def work(configs: list[dict], threads: int | None = None) -> list[dict]:
    """A local worker: run every cell of the shared list that no other worker holds."""
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


class SlurmCell(submitit.helpers.Checkpointable):
    """One cell as a SLURM array task; requeued on timeout or preemption, then it resumes."""

    def __call__(self, config: dict) -> dict:
        return asdict(run_cell(config))


def _executor(kind: str, folder: Path, params: dict[str, Any]):
    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=params.get("timeout_min") or 7 * 24 * 60)
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                     slurm_max_num_timeout=params.get("max_num_timeout", 3))
    update = {"timeout_min": params["timeout_min"], "cpus_per_task": params["cpus_per_task"],
              "gpus_per_node": params["gpus_per_node"], "tasks_per_node": 1, "nodes": 1}
    if params.get("mem_gb"):
        update["mem_gb"] = params["mem_gb"]
    for key, slurm_key in SLURM_KEYS.items():
        if params.get(key):
            update[slurm_key] = params[key]
    executor.update_parameters(**update)
    return executor


def _local_plan(configs: list[dict], workers: int, gpus: int) -> list[list[dict]]:
    """The same ordered list for every worker; with GPUs, worker i runs on GPU i mod n."""
    plans = []
    for i in range(workers):
        device = f"cuda:{i % gpus}" if gpus else "cpu"
        plans.append([{**c, "device": device if c["device"] == "auto" else c["device"]}
                      for c in configs])
    return plans


def _wait(jobs: list, total: int) -> dict[str, str]:
    """Wait for the jobs, printing progress; return the log path of each job that failed."""
    failed_logs = {}
    finished = 0
    for job in submitit.helpers.as_completed(jobs, poll_frequency=2):
        finished += 1
        try:
            job.result()
        except Exception as err:  # a dead job: its unfinished cells are reported as failed
            failed_logs[str(job.job_id)] = f"{job.paths.stderr} ({type(err).__name__})"
        print(f"sweep: {finished}/{total} jobs finished", file=sys.stderr, flush=True)
    return failed_logs


def dispatch(configs: list[dict], kind: str, params: dict[str, Any], folder: Path) -> Summary:
    """Run every cell not yet finished and report how all of them ended."""
    start = time.perf_counter()
    if kind not in KINDS:
        raise ValueError(f"unknown launcher kind {kind!r}; choose one of {', '.join(KINDS)}")
    stored = [load_json(cell_dir(c) / "result.json") for c in configs]
    todo = [c for c, s in zip(configs, stored, strict=True) if s is None]
    print(f"sweep: {len(configs)} cells, {len(configs) - len(todo)} already finished, "
          f"{len(todo)} to run ({kind})", file=sys.stderr, flush=True)
    # cells of one dataset run back to back, so a worker loads each dataset once
    todo.sort(key=lambda c: json.dumps(c["dataset"], sort_keys=True))
    workers = max(1, min(int(params.get("workers", 1)), len(todo)))
    gpus = torch.cuda.device_count() if kind == "local" else 0
    share = kind == "local" and mps.wanted(params.get("mps", "auto"), workers, gpus)
    if todo:
        preflight(todo)
        prepare_store(todo[0]["tracking"]["uri"])
    logs: dict[str, str] = {}
    if kind == "debug":
        work(todo)
    elif todo and kind == "local":
        threads = max(1, (os.cpu_count() or 1) // workers)
        with mps.daemon() if share else contextlib.nullcontext(False) as shared:
            if shared:
                print(f"sweep: {workers} workers share {gpus} GPU(s) through a CUDA MPS daemon",
                      file=sys.stderr, flush=True)
            executor = _executor(kind, folder, params)
            jobs = [executor.submit(work, plan, threads)
                    for plan in _local_plan(todo, workers, gpus)]
            _wait(jobs, len(jobs))  # a dead worker's cells point at its log via their claim
    elif todo:
        jobs = _executor(kind, folder, params).map_array(SlurmCell(), todo)
        failed_jobs = _wait(jobs, len(jobs))
        for config, job in zip(todo, jobs, strict=True):
            logs[cell_id(config)] = failed_jobs.get(str(job.job_id), str(job.paths.stderr))
    return _summarise(configs, stored, logs, start)


def _summarise(configs, stored, logs, start) -> Summary:
    counts: Counter[str] = Counter()
    failed, train = [], 0.0
    for config, before in zip(configs, stored, strict=True):
        cid = cell_id(config)
        if before is not None:
            counts["skipped"] += 1
            continue
        result = load_json(cell_dir(config) / "result.json")
        if result is not None:
            counts[result["status"]] += 1
            train += result["train_seconds"]
            continue
        counts["failed"] += 1
        claim = cell_dir(config) / "claim.lock"
        log = logs.get(cid) or (claim.read_text().strip() if claim.exists() else "") or \
            "no job started it"
        failed.append({"cell_id": cid, "log": log})
    return Summary(len(configs), dict(counts), failed, time.perf_counter() - start, train)


def write_summary(summary: Summary, folder: Path) -> Path:
    path = folder / "summary.json"
    save_json(path, asdict(summary))
    return path
