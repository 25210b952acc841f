"""bpgrid/mps.py: when a sweep starts its own CUDA MPS daemon, and that it always stops it.

A fake control program stands in for the driver's on machines without a GPU; the last test starts
the real daemon where there is one."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from composing import compose_config, local_overrides

from bpgrid import mps
from bpgrid.config import to_dict


@pytest.fixture
def fake_control(tmp_path, monkeypatch):
    """A ``nvidia-cuda-mps-control`` on the PATH that logs its arguments and input, and exits
    with the code in ``<tmp>/exit_code`` (0 unless a test writes another)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "control.log"
    bin_dir.mkdir()
    program = bin_dir / mps.CONTROL
    program.write_text(f"#!/bin/sh\necho \"args:$*\" >> {log}\ncat >> {log}\n"
                       f"exit $(cat {tmp_path}/exit_code 2>/dev/null || echo 0)\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    monkeypatch.delenv("CUDA_MPS_LOG_DIRECTORY", raising=False)
    return log


def test_auto_shares_only_a_gpu_with_more_workers_than_gpus(fake_control, monkeypatch):
    assert mps.wanted("auto", workers=4, gpus=1)
    assert mps.wanted("auto", workers=8, gpus=2)
    assert not mps.wanted("auto", workers=2, gpus=2)  # a GPU each
    assert not mps.wanted("auto", workers=4, gpus=0)  # CPU workers
    assert not mps.wanted(False, workers=4, gpus=1)
    assert mps.wanted(True, workers=1, gpus=1)
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", "/somewhere")  # already an MPS client
    assert not mps.wanted("auto", workers=4, gpus=1)


def test_bad_mode_or_missing_program_is_an_error(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="hydra.launcher.mps='yes' is not valid"):
        mps.wanted("yes", workers=4, gpus=1)
    monkeypatch.setenv("PATH", str(tmp_path))  # no control program
    with pytest.raises(ValueError, match=f"{mps.CONTROL} is not on the PATH"):
        mps.wanted(True, workers=4, gpus=1)
    assert not mps.wanted("auto", workers=4, gpus=1)


def test_daemon_sets_its_environment_inside_and_quits_after(fake_control, monkeypatch):
    # the probe checks that the client process gets the daemon's pipe folder
    monkeypatch.setattr(mps, "PROBE", "import os, sys; "
                        "sys.exit(not os.path.isdir(os.environ['CUDA_MPS_PIPE_DIRECTORY']))")
    with mps.daemon() as started:
        assert started
        pipe = Path(os.environ["CUDA_MPS_PIPE_DIRECTORY"])
        assert pipe.is_dir() and Path(os.environ["CUDA_MPS_LOG_DIRECTORY"]).is_dir()
        assert fake_control.read_text() == "args:-d\n"
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ and not pipe.parent.exists()
    assert fake_control.read_text() == "args:-d\nargs:\nquit\n"


def test_daemon_that_serves_no_cuda_process_is_quit_and_skipped(fake_control, monkeypatch,
                                                                capsys):
    monkeypatch.setattr(mps, "PROBE", "raise SystemExit(1)")
    with mps.daemon() as started:
        assert not started and "CUDA_MPS_PIPE_DIRECTORY" not in os.environ
    assert fake_control.read_text().endswith("args:\nquit\n")
    assert "CUDA MPS could not start" in capsys.readouterr().err


def test_daemon_that_cannot_start_is_not_told_to_quit(fake_control, tmp_path):
    (tmp_path / "exit_code").write_text("1")
    with mps.daemon() as started:
        assert not started
    assert fake_control.read_text() == "args:-d\n"


@pytest.mark.slow
def test_local_sweep_with_more_workers_than_gpus_runs_under_the_daemon(
        fake_control, monkeypatch, tmp_path, capsys):
    from bpgrid.backends import make_backend

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # one GPU, two workers
    monkeypatch.setattr(mps, "PROBE", "pass")
    configs = [to_dict(compose_config([*local_overrides(tmp_path), "dataset=digits",
                                       "schedule.epochs=1", f"method={m}"]))
               for m in ("sgd", "usf_bn_bm")]  # two structures: two arrays, one per worker
    # (device=cpu: the cells run here all the same)
    backend = make_backend({"name": "local", "workers": 2, "mps": "auto"}, tmp_path / "jobs")
    summary = backend.run(configs)
    assert summary.counts == {"done": 2}
    assert fake_control.read_text() == "args:-d\nargs:\nquit\n"
    assert "2 workers share 1 GPU(s) through a CUDA MPS daemon" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available() or shutil.which(mps.CONTROL) is None,
                    reason="needs a GPU and the NVIDIA driver's MPS control program")
def test_real_daemon_serves_cuda_processes():
    client = ("import subprocess, torch; torch.ones(1, device='cuda').sum().item(); "
              f"print(subprocess.run(['{mps.CONTROL}'], input=b'get_server_list\\n', "
              "capture_output=True).stdout.decode())")
    with mps.daemon() as started:
        assert started
        out = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True,
                             check=True).stdout
    assert out.strip().isdigit()  # the PID of the MPS server this client ran under
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ
