"""Who is running: this process as a cell's owner sees it, and whether a recorded owner lives.

An owner is a process (host, pid, start time) and, in a SLURM job, the job (``1234_5`` for an
array task). Whether a recorded owner still lives is asked of the best witness there is: SLURM's
queue for a job, the process table for a process on this machine (the pid and its start time, so
a reused pid is not mistaken for the owner), and otherwise the owner's heartbeat.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
from collections.abc import Iterable

import submitit

#: SLURM job states in which the job may still run the cell (``squeue -o %T``)
SLURM_LIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED",
              "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT",
              "RESV_DEL_HOLD", "SPECIAL_EXIT"}
SQUEUE_TIMEOUT_S = 30


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


@functools.cache
def machine() -> str:
    """Processes with the same machine see each other's pids: host, boot and pid namespace."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{_read('/proc/sys/kernel/random/boot_id')}/{namespace}"


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc), None where unknown."""
    stat = _read(f"/proc/{pid}/stat")
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, started: int | None) -> bool:
    """The process runs, and is the one that started at ``started`` (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    now = process_start(pid)
    if now is not None and started is not None and now != started:
        return False
    return _read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()[:1] != ["Z"]


def slurm_job_id() -> str | None:
    """This process's SLURM job: ``<array job>_<task>`` in an array task, else the job id."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def job_log() -> str:
    """Where this process's output goes: its submitit job's log, else its own stderr."""
    try:
        return str(submitit.JobEnvironment().paths.stderr)
    except RuntimeError:  # not inside a submitit job
        return "the output of the command that started it"


def me() -> dict:
    """This process as an owner's record."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "machine": machine(), "pid": pid,
            "started": process_start(pid), "user": os.environ.get("USER", ""),
            "job_id": slurm_job_id(), "log": job_log()}


def slurm_states(job_ids: Iterable[str]) -> dict[str, str] | None:
    """Each job's SLURM state, by one ``squeue`` call; a job SLURM no longer lists is absent.
    None when SLURM cannot be asked here (no squeue, no controller)."""
    ids = sorted({str(j) for j in job_ids if j})
    if not ids:
        return {}
    if shutil.which("squeue") is None:
        return None
    bases = sorted({j.split("_")[0] for j in ids})
    states = _squeue(bases)
    if states is None and len(bases) > 1:  # squeue refuses the whole list for one purged id
        parts = [_squeue([base]) for base in bases]
        if any(p is None for p in parts):
            return None
        states = {k: v for p in parts for k, v in p.items()}
    return states


def _squeue(bases: list[str]) -> dict[str, str] | None:
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(bases)],
                             capture_output=True, text=True, timeout=SQUEUE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        if "Invalid job id" in out.stderr and len(bases) == 1:
            return {}  # purged from SLURM's memory: long ended
        return None
    return dict(line.split()[:2] for line in out.stdout.splitlines() if len(line.split()) >= 2)
