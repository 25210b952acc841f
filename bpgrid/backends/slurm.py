"""``hydra/launcher=slurm``: one SLURM array task per fused array of cells, through submitit.

Before submitting, the sweep reserves each cell's lease for its task (bpgrid/lease.py): a rerun
while tasks are queued or running finds the cells owned by live jobs and leaves them alone. The
task takes its reservation over when it starts. A task that hits its time limit or is preempted
is requeued (up to ``max_num_timeout`` times), keeps its cell's lease through the requeue and
resumes from the cell's checkpoint.

Stopping the sweep (Ctrl-C, SIGTERM, a lost terminal) detaches it: the array goes on, and the
sweep says so and how to stop it. Running the same command again reattaches: it skips the cells
live jobs own, follows them to their end and summarises them with the rest.
"""

from __future__ import annotations

import secrets
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import submitit

from bpgrid import lease
from bpgrid.backends.base import POLL_SECONDS, Backend, Job, register
from bpgrid.backends.survey import cell_files
from bpgrid.cell import run_array
from bpgrid.jobs import SLURM_LIVE, slurm_states
from bpgrid.shutdown import signals_deferred, stop_on_signals


class SlurmTask(submitit.helpers.Checkpointable):
    """A job's fused array of cells as one SLURM array task; requeued on timeout or preemption,
    then they resume. ``tokens``: the lease the sweep reserved for each cell."""

    def __call__(self, cells: list[dict[str, Any]], tokens: list[str]) -> list[dict]:
        stop_on_signals()  # scancel's SIGTERM: runs are marked KILLED, leases kept for a requeue
        return [asdict(result) for result in run_array(cells, tokens)]


@register
class SlurmBackend(Backend):
    """Each fused array of cells a job of its own, all of them one SLURM array; the settings
    are sbatch's."""

    name = "slurm"

    def __init__(self, folder: Path, partition: str | None = None, account: str | None = None,
                 qos: str | None = None, timeout_min: int = 240, cpus_per_task: int = 2,
                 gpus_per_node: int = 0, mem_gb: float | None = None,
                 array_parallelism: int | None = 64, max_num_timeout: int = 3,
                 setup: list[str] | None = None,
                 additional_parameters: dict[str, Any] | None = None) -> None:
        super().__init__(folder)
        self.max_num_timeout = max_num_timeout
        optional = {"mem_gb": mem_gb, "slurm_partition": partition, "slurm_account": account,
                    "slurm_qos": qos, "slurm_array_parallelism": array_parallelism,
                    "slurm_setup": setup, "slurm_additional_parameters": additional_parameters}
        self.parameters = {"timeout_min": timeout_min, "cpus_per_task": cpus_per_task,
                           "gpus_per_node": gpus_per_node, "tasks_per_node": 1, "nodes": 1,
                           **{key: value for key, value in optional.items() if value}}

    def plan(self, arrays: list[list[dict[str, Any]]]) -> list[Job]:
        return [Job([array]) for array in arrays]

    def gpus(self) -> bool:
        return bool(self.parameters["gpus_per_node"])

    def submit(self, jobs: list[Job]) -> None:
        """Reserve every cell, submit the array, and name each reservation's job; signals wait
        until all three are done, so a stopped sweep leaves no reservation without its job."""
        executor = submitit.AutoExecutor(folder=self.folder, cluster="slurm",
                                         slurm_max_num_timeout=self.max_num_timeout)
        executor.update_parameters(**self.parameters)
        with signals_deferred():
            held = {id(job): self._reserve(job) for job in jobs}
            jobs[:] = [job for job in jobs if held[id(job)] is not None]
            if not jobs:
                return
            try:
                handles = executor.map_array(
                    SlurmTask(), [job.cells for job in jobs],
                    [[r.token for r in held[id(job)]] for job in jobs])
            except BaseException:
                for job in jobs:
                    for reservation in held[id(job)]:
                        reservation.release()
                raise
            for job, handle in zip(jobs, handles, strict=True):
                job.handle = handle
                for reservation in held[id(job)]:
                    reservation.renew(job_id=handle.job_id)
        print(f"sweep: {len(jobs)} fused arrays of {sum(len(j.cells) for j in jobs)} cells "
              f"submitted as SLURM array {handles[0].job_id.split('_')[0]}; Ctrl-C detaches "
              f"(the array goes on)", file=sys.stderr, flush=True)

    @staticmethod
    def _reserve(job: Job) -> list[lease.Lease] | None:
        """The job's cells' leases, reserved for it; None if a live owner took one meanwhile."""
        reserved = []
        for config in job.cells:
            sweep = str(config["grid"].get("sweep_id", ""))
            try:
                reserved.append(lease.acquire(cell_files(config).lease, sweep_id=sweep,
                                              kind=lease.RESERVED,
                                              token=secrets.token_hex(8), heartbeat=False))
            except lease.Owned as err:
                print(f"sweep: {err}", file=sys.stderr)
                for r in reserved:
                    r.release()
                return None
        return reserved

    def stop(self, jobs: list[Job], signum: int) -> str:
        return "running"

    def detached(self, jobs: list[Job]) -> str:
        arrays = sorted({job.handle.job_id.split("_")[0] for job in jobs if job.handle})
        text = (f"detached: SLURM array {', '.join(arrays)} goes on; run the same command again "
                f"to follow it (cells live jobs own are skipped), or `scancel "
                f"{' '.join(arrays)}` to stop it")
        return text if arrays else "detached"

    def follow(self, running: dict[str, dict]) -> None:
        """Wait until the SLURM jobs that own cells of this grid have ended."""
        jobs = {held["job_id"] for held in running.values() if held.get("job_id")}
        if not jobs:
            return
        print(f"sweep: following {len(jobs)} SLURM jobs of an earlier sweep that own cells of "
              f"this grid: {', '.join(sorted(jobs))}", file=sys.stderr, flush=True)
        while True:
            states = slurm_states(jobs)
            if states is None:
                print("sweep: SLURM cannot be asked here; not following them", file=sys.stderr)
                return
            if not any(states.get(j) in SLURM_LIVE for j in jobs):
                return
            time.sleep(POLL_SECONDS)
