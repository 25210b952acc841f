"""End-to-end checks of a real SLURM cluster (`bash launch/slurm_local.sh up`) through submitit.

Skipped when no cluster answers, unless BPGRID_SLURM=1: then a missing cluster is a failure.
"""

import subprocess
import time

import pytest
import submitit

pytestmark = pytest.mark.slurm

CANCEL_DEADLINE_S = 90  # submitit must notice a cancelled job well within this


def _executor(tmp_path) -> submitit.AutoExecutor:
    ex = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    # The job runs `sys.executable -m submitit.core._submit`, i.e. this venv's python.
    ex.update_parameters(slurm_partition="debug", cpus_per_task=1, timeout_min=5)
    return ex


def _squeue_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def _wait_done(job: submitit.Job, deadline_s: float) -> None:
    """Poll job.done() once a second, as job.wait() does, but give up after deadline_s."""
    deadline = time.monotonic() + deadline_s
    while not job.done():
        assert time.monotonic() < deadline, (
            f"submitit still thinks job {job.job_id} is {job.state!r} after {deadline_s}s"
        )
        time.sleep(1)


def test_submitit_job_returns_its_result(tmp_path, slurm_cluster):
    executor = _executor(tmp_path)

    def add(a, b):  # a local function: cloudpickle ships it by value, no import in the job
        import os

        return a + b, os.environ.get("SLURM_JOB_ID")

    job = executor.submit(add, 2, 3)
    _wait_done(job, deadline_s=90)  # job.result() alone would wait forever on a stuck job
    value, slurm_job_id = job.result()
    assert value == 5
    assert slurm_job_id == job.job_id
    # The result pickle can beat the accounting record; sacct must catch up shortly.
    deadline = time.monotonic() + 30
    while (state := job.watcher.get_state(job.job_id, mode="force")) != "COMPLETED":
        assert time.monotonic() < deadline, f"sacct says {state!r} for job {job.job_id}"
        time.sleep(1)


def test_cancelled_job_is_reported_not_waited_for(tmp_path, slurm_cluster):
    executor = _executor(tmp_path)
    job = executor.submit(time.sleep, 600)

    # Cancel it while it runs (not merely while pending).
    deadline = time.monotonic() + 60
    while _squeue_state(job.job_id) != "RUNNING":
        assert time.monotonic() < deadline, f"job {job.job_id} never started"
        time.sleep(0.5)
    subprocess.run(["scancel", job.job_id], check=True)

    # submitit sees the end only through sacct (no result pickle is written); without
    # accounting it would wait forever. Poll like job.wait() does, but with a deadline.
    _wait_done(job, deadline_s=CANCEL_DEADLINE_S)
    assert job.state.startswith("CANCELLED"), job.state  # sacct says "CANCELLED by 0"
    with pytest.raises(submitit.core.utils.UncompletedJobError):
        job.result()  # waits submitit's _results_timeout_s (15 s) for a pickle, then raises
