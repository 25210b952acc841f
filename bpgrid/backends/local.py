"""``hydra/launcher=local``: N worker processes on this machine, through submitit.

Each worker gets its own GPU when there are GPUs (worker i runs on GPU i mod n), otherwise an
equal share of the CPU threads. When workers outnumber GPUs, they can run under a CUDA MPS daemon
of the sweep's own (bpgrid/mps.py), so the cells sharing a GPU run side by side.

A sweep stopped by SIGINT, SIGTERM or SIGHUP stops its workers: each gets SIGTERM, gives its cell
back (run KILLED, lease released) and ends; any still there after GRACE_SECONDS is killed. A sweep
killed outright is noticed by its workers within a second (bpgrid/shutdown.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import submitit
import torch

from bpgrid import mps as cuda_mps
from bpgrid import shutdown
from bpgrid.backends.base import Backend, Job, register
from bpgrid.backends.worker import worker
from bpgrid.jobs import process_alive, process_start

A_WEEK_MIN = 7 * 24 * 60
GRACE_SECONDS = 20.0


def descendants(pid: int) -> list[int]:
    """The pids of a process's children, their children, and so on (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@register
class LocalBackend(Backend):
    """One job per worker, each with the same ordered list of arrays (leases share them out)."""

    name = "local"
    poll_seconds = 0.2  # a look is a waitpid: the sweep ends as its last worker does

    def __init__(self, folder: Path, workers: int = 2, timeout_min: int | None = None,
                 mps: str | bool = "auto") -> None:
        super().__init__(folder)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"hydra.launcher.workers must be a positive integer, got "
                             f"{workers!r}")
        cuda_mps.wanted(mps, workers, gpus=0)  # a bad mode fails now, before any cell starts
        self.workers, self.timeout_min, self.mps = workers, timeout_min, mps

    def plan(self, arrays: list[list[dict[str, Any]]]) -> list[Job]:
        gpus = torch.cuda.device_count()
        jobs = []
        for i in range(min(self.workers, len(arrays))):
            device = f"cuda:{i % gpus}" if gpus else "cpu"
            jobs.append(Job([[{**c, "device": device if c["device"] == "auto" else c["device"]}
                              for c in array] for array in arrays]))
        return jobs

    @contextlib.contextmanager
    def session(self, jobs: list[Job]) -> Iterator[None]:
        """Workers that outnumber the GPUs run under the sweep's own MPS daemon (mps: auto)."""
        gpus = torch.cuda.device_count()
        if not cuda_mps.wanted(self.mps, len(jobs), gpus):
            yield
            return
        with cuda_mps.daemon() as shared:
            if shared:
                print(f"sweep: {len(jobs)} workers share {gpus} GPU(s) through a CUDA MPS "
                      f"daemon", file=sys.stderr, flush=True)
            yield

    def submit(self, jobs: list[Job]) -> None:
        executor = submitit.LocalExecutor(folder=self.folder)
        executor.update_parameters(timeout_min=self.timeout_min or A_WEEK_MIN)
        threads = max(1, (os.cpu_count() or 1) // len(jobs))
        for job in jobs:
            job.handle = executor.submit(worker, job.arrays, threads, shutdown.me())

    def stop(self, jobs: list[Job], signum: int) -> str:
        """SIGTERM to every worker, then SIGKILL to what is left after GRACE_SECONDS."""
        processes = [job.handle._process for job in jobs
                     if job.handle is not None and job.handle._process is not None]
        if not processes:
            return "interrupted"
        tree = [(p, process_start(p)) for proc in processes
                for p in [proc.pid, *descendants(proc.pid)]]
        print(f"sweep: stopping {len(processes)} workers; their cells resume on a rerun",
              file=sys.stderr, flush=True)
        for proc in processes:  # submitit's controller passes SIGTERM on to its worker
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and any(p.poll() is None for p in processes):
            time.sleep(0.2)
        for pid, started in tree:
            if process_alive(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for proc in processes:
            proc.wait()
        return "interrupted"
