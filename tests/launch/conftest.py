"""The SLURM cluster fixture: skip when none answers, unless BPGRID_SLURM=1 (then fail)."""

import functools
import os
import shutil
import subprocess

import pytest


@functools.cache
def why_no_cluster() -> str | None:
    """None when sinfo answers (asked once: it takes ~9 s to give up on a stopped controller)."""
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %t"], capture_output=True, text=True,
                             timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo timed out"
    if out.returncode != 0 or not out.stdout.strip():
        return f"sinfo failed: {out.stderr.strip() or out.stdout.strip() or 'no partitions'}"
    return None


@pytest.fixture
def slurm_cluster():
    why = why_no_cluster()
    if why is not None:
        message = f"no SLURM cluster ({why}); start one with `bash launch/slurm_local.sh up`"
        if os.environ.get("BPGRID_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)
