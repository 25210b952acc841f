"""A CUDA MPS daemon of a sweep's own, so that cells sharing one GPU run their kernels side by side.

Without MPS a GPU time-slices between processes: Liao et al.'s nets at batch 100 leave most of an
H100 idle, yet 8 cells on one H100 train no faster together than one alone; under MPS they train
about twice as fast (benchmarks/README.md). The daemon gets private pipe and log folders, so it
serves only the processes started with its environment, and it is told to quit at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

CONTROL = "nvidia-cuda-mps-control"
MODES = ("auto", True, False)
PROBE = "import torch; torch.zeros(1, device='cuda'); torch.cuda.synchronize()"


def wanted(mode, workers: int, gpus: int) -> bool:
    """Whether a local sweep with this many workers and GPUs runs under its own MPS daemon.

    ``auto``: when workers outnumber GPUs, the control program is installed and this process is
    not already an MPS client. ``true`` insists (and fails without the program); ``false`` never.
    """
    if mode not in MODES:
        raise ValueError(f"hydra.launcher.mps={mode!r} is not valid; choose one of: auto, true, "
                         f"false")
    installed = shutil.which(CONTROL) is not None
    if mode is True and not installed:
        raise ValueError(f"hydra.launcher.mps=true, but {CONTROL} is not on the PATH "
                         f"(it comes with the NVIDIA driver)")
    if mode == "auto":
        return (installed and 0 < gpus < workers
                and "CUDA_MPS_PIPE_DIRECTORY" not in os.environ)
    return mode is True


@contextlib.contextmanager
def daemon() -> Iterator[bool]:
    """Start the daemon and put its environment into ``os.environ`` for the processes started
    inside the block. Yields False, with the environment left alone, when it cannot start or a
    CUDA process cannot start under it: the work then runs time-sliced instead."""
    folder = Path(tempfile.mkdtemp(prefix="bpgrid-mps-"))  # short: the pipe is a unix socket
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"),
           "CUDA_MPS_LOG_DIRECTORY": str(folder / "log")}
    for path in env.values():
        os.makedirs(path)
    full = {**os.environ, **env}
    started = _run([CONTROL, "-d"], full)
    saved = {key: os.environ.get(key) for key in env}
    try:
        ok = started and _run([sys.executable, "-c", PROBE], full)
        if not ok:
            log = folder / "log" / "control.log"
            detail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
            print(f"CUDA MPS could not start ({' '.join(detail) or 'see the driver log'}); "
                  f"processes on one GPU time-slice it", file=sys.stderr)
        else:
            os.environ.update(env)
        yield ok
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if started:
            _run([CONTROL], full, stdin=b"quit\n")
        shutil.rmtree(folder, ignore_errors=True)


def _run(command: list[str], env: dict[str, str], stdin: bytes | None = None) -> bool:
    try:
        done = subprocess.run(command, env=env, input=stdin, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
