"""``hydra/launcher=debug``: every array of cells in the sweep's own process, one after another."""

from __future__ import annotations

from typing import Any

from bpgrid.backends.base import Backend, Job, register
from bpgrid.backends.worker import work


@register
class DebugBackend(Backend):
    """One job holding every array, run in this process (a debugger sees the cells' code)."""

    name = "debug"

    def plan(self, arrays: list[list[dict[str, Any]]]) -> list[Job]:
        return [Job(arrays)]

    def submit(self, jobs: list[Job]) -> None:
        for job in jobs:
            job.results = work(job.arrays)
