"""A sweep's backend: how the cells to run become jobs, and how the jobs run.

``Backend.run`` is the sweep, the same on every backend: skip finished cells, check the data,
``plan`` the rest into jobs, ``submit`` them, ``wait`` for them, ``summarise`` how every cell
ended, and return that summary. A backend (debug, local, slurm) supplies plan and submit, and
where it needs one, a ``session`` held while its jobs run. Backends are registered by name as
feedback rules and models are: ``hydra.launcher.name`` picks one, and the other
``hydra.launcher`` keys are its constructor's arguments.

A cell never takes another down: run_cell turns exceptions into a failed result, and a job that
dies (OOM kill, node loss, scancel) loses only the cells it had not finished, which the summary
reports as failed with the job's log. Unfinished cells resume from their checkpoints.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import sys
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import submitit

from bpgrid.checkpoint import load_json, save_json
from bpgrid.config import ConfigError, cell_id
from bpgrid.data.registry import EMBEDDED
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


def cell_dir(config: Mapping[str, Any]) -> Path:
    return Path(config["cells_dir"]) / cell_id(config)


@dataclass
class Job:
    """What a backend starts as one unit (a local worker, a SLURM array task): the cells it may
    run, in order, and once submitted, the submitit job running them."""

    cells: list[dict[str, Any]]
    handle: submitit.Job | None = None  # None when the cells run in the sweep's own process
    error: str | None = None  # the exception's name when the job itself died

    @property
    def log(self) -> str:
        """Where the job's output went, with the error when it died."""
        where = str(self.handle.paths.stderr) if self.handle else "the sweep's own output"
        return f"{where} ({self.error})" if self.error else where


@dataclass
class Failure:
    """A cell that ended without a result, and the log that says why."""

    cell_id: str
    log: str


@dataclass
class Summary:
    """How a sweep ended: each cell's status (done, skipped, diverged, failed), the counts, and
    the failed cells with their logs."""

    total: int
    counts: dict[str, int]
    statuses: dict[str, str] = field(default_factory=dict)
    failed: list[Failure] = field(default_factory=list)
    wall_seconds: float = 0.0
    train_seconds: float = 0.0

    def line(self) -> str:
        order = ("done", "skipped", "diverged", "failed")
        parts = ", ".join(f"{self.counts.get(k, 0)} {k}" for k in order)
        return f"sweep: {self.total} cells: {parts}"

    def save(self, folder: Path) -> Path:
        path = folder / "summary.json"
        save_json(path, asdict(self))
        return path


class Backend(ABC):
    """Runs a sweep's cells: ``plan`` makes jobs of them, ``submit`` starts the jobs, ``wait``
    returns once they have ended, ``summarise`` says how each cell ended."""

    name: ClassVar[str] = ""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)  # the jobs' logs

    @abstractmethod
    def plan(self, cells: list[dict[str, Any]]) -> list[Job]:
        """The jobs that run these cells, given in the order to run them."""

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
        for handle in submitit.helpers.as_completed(handles, poll_frequency=POLL_SECONDS):
            job = submitted[id(handle)]
            try:
                handle.result()
            except Exception as err:  # a dead job: its unfinished cells are reported as failed
                job.error = type(err).__name__
            on_end(job)

    def run(self, configs: list[dict[str, Any]]) -> Summary:
        """Run every cell not yet finished and report how each of them ended."""
        start = time.perf_counter()
        stored = [load_json(cell_dir(c) / "result.json") for c in configs]
        todo = [c for c, s in zip(configs, stored, strict=True) if s is None]
        print(f"sweep: {len(configs)} cells, {len(configs) - len(todo)} already finished, "
              f"{len(todo)} to run ({self.name})", file=sys.stderr, flush=True)
        jobs: list[Job] = []
        if todo:
            preflight(todo)
            prepare_store(todo[0]["tracking"]["uri"])
            # cells of one dataset run back to back, so a worker loads each dataset once
            todo.sort(key=lambda c: json.dumps(c["dataset"], sort_keys=True))
            jobs = self.plan(todo)
            ended = itertools.count(1)

            def on_end(job: Job) -> None:
                print(f"sweep: {next(ended)}/{len(jobs)} jobs finished", file=sys.stderr,
                      flush=True)

            with self.session(jobs):
                self.submit(jobs)
                self.wait(jobs, on_end)
        return self.summarise(configs, stored, jobs, time.perf_counter() - start)

    def summarise(self, configs: list[dict[str, Any]], stored: list[dict | None],
                  jobs: list[Job], seconds: float) -> Summary:
        """Each cell's status from its result file; ``stored`` are the results found before."""
        given: dict[str, list[Job]] = {}
        for job in jobs:
            for config in job.cells:
                given.setdefault(cell_id(config), []).append(job)
        counts: Counter[str] = Counter()
        statuses, failed, train = {}, [], 0.0
        for config, before in zip(configs, stored, strict=True):
            cid = cell_id(config)
            if before is not None:
                status = "skipped"
            elif (result := load_json(cell_dir(config) / "result.json")) is not None:
                status, train = result["status"], train + result["train_seconds"]
            else:
                status = "failed"
                failed.append(Failure(cid, _failure_log(config, given.get(cid, []))))
            counts[status] += 1
            statuses[cid] = status
        return Summary(len(configs), dict(counts), statuses, failed, seconds, train)


def _failure_log(config: Mapping[str, Any], given: list[Job]) -> str:
    """The log of the job the cell was given to, when only one was (a SLURM task); else, where
    workers share the cells, that of the worker whose claim on the cell is on disk."""
    if len(given) == 1 and given[0].handle is not None:
        return given[0].log
    claim = cell_dir(config) / "claim.lock"
    return (claim.read_text().strip() if claim.exists() else "") or "no job started it"


def preflight(configs: list[dict[str, Any]]) -> None:
    """Fail before launching when a dataset's files are missing and may not be downloaded."""
    for ds in {json.dumps(c["dataset"], sort_keys=True) for c in configs}:
        ds = json.loads(ds)
        if ds["name"] in EMBEDDED or ds.get("download"):
            continue
        if not Path(ds["root"]).exists():
            raise FileNotFoundError(
                f"dataset {ds['name']}: no directory {ds['root']}. Put the files there, set "
                f"dataset.root=PATH, or pass dataset.download=true where torchvision can fetch it")
