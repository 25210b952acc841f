"""Backends that run a sweep's cells: ``debug`` (in this process), ``local`` (worker processes),
``slurm`` (array tasks). ``make_backend(cfg.hydra.launcher, folder).run(cells)`` returns the
sweep's Summary."""

from bpgrid.backends import debug, local, slurm  # noqa: F401 - each registers its backend
from bpgrid.backends.base import BACKENDS, Backend, Job, make_backend, register
from bpgrid.backends.summary import Summary

__all__ = ["BACKENDS", "Backend", "Job", "Summary", "make_backend", "register"]
