"""Stopping cleanly: SIGINT, SIGTERM and SIGHUP raise ``Interrupted``; workers die with their sweep.

``Interrupted`` is a BaseException, so a cell's ``except Exception`` never takes a stop for the
cell's failure: the cell marks its MLflow run KILLED, gives its lease back and the process ends,
leaving the cell to resume from its checkpoint. After the first signal the others are ignored, so
that clean-up is not cut short (a sweep that must not wait sends SIGKILL). File writes defer the
stop to their end, so that no stop lands inside torch.save.

A worker process also watches its sweep: when the sweep is gone, however it ended (SIGKILL
included, which no handler sees), the worker stops itself as if it had been sent SIGTERM, so no
worker goes on training for a sweep that no longer exists.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections.abc import Iterator

from bpgrid.jobs import process_alive, process_start

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WATCH_SECONDS = 1.0
GRACE_SECONDS = 20.0  # a worker whose sweep is gone and that has not ended by then is killed
PR_SET_PDEATHSIG = 1

_state = {"signum": None, "deferred": 0}


class Interrupted(BaseException):
    """The process was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _handle(signum: int, frame) -> None:
    if _state["signum"] is not None:
        return  # stopping already: let the clean-up finish
    _state["signum"] = signum
    if not _state["deferred"]:
        raise Interrupted(signum)


def requested() -> Interrupted | None:
    """The stop a signal asked for, if one did (an error raised while it was delivered, e.g.
    inside a C++ callback that wraps it, is then a stop, not the cell's failure)."""
    return None if _state["signum"] is None else Interrupted(_state["signum"])


def check() -> None:
    """Raise Interrupted if a signal asked this process to stop."""
    if (stop := requested()) is not None:
        raise stop


def stop_on_signals() -> dict:
    """From now on the signals raise Interrupted in the main thread; the previous handlers."""
    _state["signum"] = None
    return {s: signal.signal(s, _handle) for s in SIGNALS}


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """stop_on_signals for the duration of the block."""
    previous = stop_on_signals()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """A signal that comes during the block (a file being written, a job being submitted) takes
    effect when the block ends, not in the middle of it."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1
    if not _state["deferred"]:
        check()


def me() -> tuple[int, int | None]:
    """This process as ``die_with`` takes it: its pid and start time."""
    return os.getpid(), process_start(os.getpid())


def die_with(parent: tuple[int, int | None]) -> None:
    """Stop this process (SIGTERM to itself) when the process ``parent`` has ended."""
    try:  # the kernel's own notice, for the direct parent (Linux)
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while process_alive(*parent):
            time.sleep(WATCH_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACE_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="bpgrid-sweep-watch", daemon=True).start()
