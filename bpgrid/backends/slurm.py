"""``hydra/launcher=slurm``: one SLURM array task per cell, through submitit.

A task that hits its time limit or is preempted is requeued (up to ``max_num_timeout`` times) and
resumes from the cell's checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import submitit

from bpgrid.backends.base import Backend, Job, register
from bpgrid.cell import run_cell


class SlurmTask(submitit.helpers.Checkpointable):
    """A job's cells as one array task; requeued on timeout or preemption, then they resume."""

    def __call__(self, cells: list[dict[str, Any]]) -> list[dict]:
        return [asdict(run_cell(config)) for config in cells]


@register
class SlurmBackend(Backend):
    """Each cell a job of its own, all of them one array; the settings are sbatch's."""

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

    def plan(self, cells: list[dict[str, Any]]) -> list[Job]:
        return [Job([config]) for config in cells]

    def submit(self, jobs: list[Job]) -> None:
        executor = submitit.AutoExecutor(folder=self.folder, cluster="slurm",
                                         slurm_max_num_timeout=self.max_num_timeout)
        executor.update_parameters(**self.parameters)
        handles = executor.map_array(SlurmTask(), [job.cells for job in jobs])
        for job, handle in zip(jobs, handles, strict=True):
            job.handle = handle
