"""A sweep's backend: how the cells to run become jobs, and how the jobs run.

``Backend.run`` is the sweep, the same on every backend: survey the cells (finished ones are
skipped, ones a live job owns are left to it), check the data, ``plan`` the rest into jobs,
``submit`` them, ``wait`` for them while showing the cells' progress
(bpgrid/backends/progress.py), and summarise how every cell ended. A backend (debug, local,
slurm) supplies plan and submit, and where it needs them, a ``session`` held while its jobs run,
what ``stop`` does when the sweep is stopped by a signal, and how it ``follow``s cells that jobs
of an earlier sweep still run. Backends are registered by name as feedback rules and models are:
``hydra.launcher.name`` picks one, and the other ``hydra.launcher`` keys are its constructor's
arguments.

The cells to run are packed into fused arrays (bpgrid/backends/packing.py, ``grid.fuse``) and a
job runs arrays; summaries count cells. A cell never takes another down: run_array turns every
error of a cell into its failed result, and a job that dies (OOM kill, node loss, scancel) loses
only the cells it held, which the summary reports as failed with the job's log. Every cell
resumes from its checkpoint on a rerun.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import submitit
import torch

from bpgrid.backends import packing
from bpgrid.backends.progress import SweepProgress
from bpgrid.backends.summary import Summary, summarise
from bpgrid.backends.survey import survey
from bpgrid.config import ConfigError, cell_id
from bpgrid.data.missing import check_data
from bpgrid.shutdown import Interrupted
from bpgrid.tracking import prepare_store

BACKENDS: dict[str, type[Backend]] = {}
POLL_SECONDS = 2


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make the backend available as ``hydra/launcher=<cls.name>``."""
    BACKENDS[cls.name] = cls
    return cls


def make_backend(launcher: Mapping[str, Any], folder: Path) -> Backend:
    """The backend ``launcher["name"]`` names, its other keys as settings, its jobs' logs in
    ``folder``; ConfigError listing the valid names, or the valid settings, for a bad one."""
    settings = dict(launcher)
    name = settings.pop("name", None)
    if name not in BACKENDS:
        raise ConfigError(f"hydra.launcher names no bpgrid launcher ({name!r}); choose "
                          f"hydra/launcher= one of: {', '.join(sorted(BACKENDS))}")
    cls = BACKENDS[name]
    valid = list(inspect.signature(cls).parameters)[1:]
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ConfigError(f"hydra/launcher={name} takes no setting {', '.join(unknown)}; valid "
                          f"settings: {', '.join(valid) or 'none'}")
    try:
        return cls(folder, **settings)
    except ValueError as err:
        raise ConfigError(str(err)) from None


@dataclass
class Job:
    """What a backend starts as one unit (a local worker, a SLURM array task): the fused arrays
    of cells it may run, in order, and once submitted, the submitit job running them."""

    arrays: list[list[dict[str, Any]]]
    handle: submitit.Job | None = None  # None when the cells run in the sweep's own process
    error: str | None = None  # the exception's name when the job itself died
    results: list[dict] = field(default_factory=list)  # what its cells returned

    @property
    def cells(self) -> list[dict[str, Any]]:
        return [config for array in self.arrays for config in array]

    @property
    def log(self) -> str:
        """Where the job's output went, with the error when it died."""
        where = str(self.handle.paths.stderr) if self.handle else "the sweep's own output"
        return f"{where} ({self.error})" if self.error else where


class Backend(ABC):
    """Runs a sweep's cells: ``plan`` makes jobs of them, ``submit`` starts the jobs, ``wait``
    returns once they have ended, ``summarise`` says how each cell ended."""

    name: ClassVar[str] = ""
    poll_seconds: ClassVar[float] = POLL_SECONDS  # between two looks at the jobs' states

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)  # the jobs' logs

    @abstractmethod
    def plan(self, arrays: list[list[dict[str, Any]]]) -> list[Job]:
        """The jobs that run these arrays of cells, given in the order to run them."""

    def gpus(self) -> bool:
        """Whether cells whose ``device`` is ``auto`` train on GPUs (how arrays are sized)."""
        return torch.cuda.is_available()

    @abstractmethod
    def submit(self, jobs: list[Job]) -> None:
        """Start the jobs, setting each one's handle (in-process jobs run to their end here)."""

    def session(self, jobs: list[Job]) -> contextlib.AbstractContextManager:
        """What the jobs need while they are submitted and waited for; nothing by default."""
        return contextlib.nullcontext()

    def wait(self, jobs: list[Job], on_end: Callable[[Job], None]) -> None:
        """Return once every submitted job has ended, polling every few seconds and calling
        ``on_end`` as each one ends; a job that died keeps its error."""
        submitted = {id(job.handle): job for job in jobs if job.handle is not None}
        handles = [job.handle for job in submitted.values()]
        for handle in submitit.helpers.as_completed(handles, poll_frequency=self.poll_seconds):
            job = submitted[id(handle)]
            try:
                job.results = handle.result() or []
            except Exception as err:  # a dead job: its unfinished cells are reported as failed
                job.error = type(err).__name__
            on_end(job)

    def stop(self, jobs: list[Job], signum: int) -> str:
        """The sweep was stopped by a signal while its jobs ran: end them (or leave them
        running); the status of their unfinished cells (``interrupted`` by default)."""
        return "interrupted"

    def follow(self, running: dict[str, dict]) -> None:  # noqa: B027 - a hook, empty here
        """Wait for cells that live jobs of an earlier sweep own, where this backend can
        (SLURM's jobs); by default they are reported as running and not waited for."""

    def run(self, configs: list[dict[str, Any]],
            on_launch: Callable[[list[dict[str, Any]]], None] | None = None) -> Summary:
        """Run every cell not yet finished nor owned by a live job; how each of them ended.
        ``on_launch(cells)`` is called before the cells to run are launched, if any are."""
        start = time.perf_counter()
        found = survey(configs)
        print(f"sweep: {len(configs)} cells, {len(found.finished)} already finished, "
              f"{len(found.running)} owned by live jobs (running), {len(found.todo)} to run "
              f"({self.name})", file=sys.stderr, flush=True)
        jobs: list[Job] = []
        stopped, signum = None, None
        sweep_id = str(configs[0]["grid"].get("sweep_id", "")) if configs else ""
        try:
            if found.todo:
                preflight(found.todo)
                prepare_store(found.todo[0]["tracking"]["uri"])
                if on_launch is not None:
                    on_launch(found.todo)
            if found.todo or found.running:
                every = float(configs[0]["grid"].get("progress_seconds", 10))
                with SweepProgress(configs, sweep_id, every) as progress:
                    if found.todo:
                        self._launch(found.todo, jobs, progress.poke)
                    if found.running:
                        self.follow(found.running)
        except Interrupted as stop:
            signum = stop.signum
            stopped = getattr(stop, "status", None) or self.stop(jobs, signum)
        summary = summarise(configs, found, _given(jobs), sweep_id, stopped)
        summary.wall_seconds, summary.stopped_by = time.perf_counter() - start, signum
        if stopped == "running":
            summary.detached = self.detached(jobs)
        return summary

    def detached(self, jobs: list[Job]) -> str:
        """What a sweep stopped while its jobs go on says about them (SLURM)."""
        return ""

    def _launch(self, todo: list[dict[str, Any]], jobs: list[Job],
                on_end: Callable[[Job], None]) -> None:
        arrays = packing.arrays(todo, self.gpus())
        if len(arrays) < len(todo):
            sizes = (f"1 fused array of {len(todo)} cells" if len(arrays) == 1 else
                     f"{len(arrays)} fused arrays of up to {max(map(len, arrays))} cells")
            print(f"sweep: {len(todo)} cells to run as {sizes}", file=sys.stderr, flush=True)
        jobs += self.plan(arrays)
        with self.session(jobs):  # jobs are stopped while their session still holds
            try:
                self.submit(jobs)
                self.wait(jobs, on_end)
            except Interrupted as stop:
                stop.status = self.stop(jobs, stop.signum)
                raise


def _given(jobs: list[Job]) -> dict[str, tuple[str, str | None]]:
    """Each cell's job log and error as its job knows them: from the result the job returned
    for it (so a failure a full disk kept from its marker is still told), else, for a cell
    given to one job alone (a SLURM task), that job's log."""
    given: dict[str, list[Job]] = {}
    for job in jobs:
        for config in job.cells:
            given.setdefault(cell_id(config), []).append(job)
    out = {cid: (js[0].log, None) for cid, js in given.items() if len(js) == 1 and js[0].handle}
    for job in jobs:
        for result in job.results:
            if result.get("status") == "failed" and not result.get("cached"):
                out[result["cell_id"]] = (job.log, result.get("error"))
    return out


def preflight(configs: list[dict[str, Any]]) -> None:
    """Fail before launching when a dataset's files are missing and will not be downloaded
    (MissingData listing each; the sweep's command line checks its whole grid earlier)."""
    check_data(c["dataset"] for c in configs)
