"""``python -m bpgrid.status``: a grid's state from a real sweep's cells and store, with a cell
that failed, one that a live ``bpgrid.train`` is training, one claimed by an owner that died
and some never started; ``--watch`` under a pseudo-terminal; one message for a bad command line.
"""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from composing import compose_config, local_overrides

from bpgrid.config import cell_id
from bpgrid.status.gather import table_text

# 8 cells: {sgd, usf} x {1, 300 epochs} x {no first layer, one that does not exist}
GRID = ["+grid=quick", "dataset=digits", "method=sgd,usf", "lr_scale=10", "schedule.epochs=1,300",
        "model.pretrained_first_layer=null,/nonexistent/first.pt"]


def status_cmd(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bpgrid.status", *GRID, *local_overrides(root), *args]


def cell_dir(root: Path, *cell: str) -> Path:
    config = compose_config([*local_overrides(root), "+grid=quick", "dataset=digits",
                             "lr_scale=10", *cell], "sweep")
    return root / "cells" / cell_id(config)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The sweep ran sgd's 1-epoch cells (one done, one failed); usf's 300-epoch cell is being
    trained; usf's 1-epoch cell was claimed by a process that died."""
    root = tmp_path_factory.mktemp("status")
    sweep = subprocess.run(
        [sys.executable, "-m", "bpgrid.sweep", "+grid=quick", "dataset=digits", "method=sgd",
         "lr_scale=10", "schedule.epochs=1", GRID[-1],
         *local_overrides(root), f"hydra.sweep.dir={root}/multirun"],
        cwd=root, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 1, sweep.stderr[-3000:]
    running = cell_dir(root, "method=usf", "schedule.epochs=300")
    train = subprocess.Popen(
        [sys.executable, "-m", "bpgrid.train", "+grid=quick", "method=usf", "dataset=digits",
         "lr_scale=10", "schedule.epochs=300", *local_overrides(root)],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stale = cell_dir(root, "method=usf", "schedule.epochs=1")
    code = ("import os, sys; from pathlib import Path; from bpgrid import lease; "
            "lease.acquire(Path(sys.argv[1]), sweep_id='gone'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(stale / "lease.json")], check=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (running / "checkpoint.prev.pt").exists():
        assert train.poll() is None, "the training cell ended early"
        time.sleep(0.2)
    assert (running / "checkpoint.prev.pt").exists()  # two epochs logged
    yield root, train
    train.send_signal(signal.SIGTERM)
    train.wait(timeout=120)


@pytest.mark.slow
def test_status_tells_done_failed_running_stale_and_missing_cells(swept):
    root, train = swept
    out = subprocess.run(status_cmd(root), cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "grid quick: 8 cells: 1 done, 1 failed, 1 running, 1 stale, 4 missing" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("digits"))
    assert re.search(r"digits\s+1/4 done, 1 failed\s+0/4 done, 1 running \d+\.\d%, 1 stale",
                     row), text
    failed = text.split("\nfailed:\n")[1]
    assert failed.startswith("  sgd digits lr_scale=10 seed=0 (")
    assert re.search(r"log: \S+/multirun/jobs/\S+_log\.err", failed)
    assert "FileNotFoundError: pretrained_first_layer: no checkpoint file at " in failed
    running = text.split("\nrunning:\n")[1]
    assert re.search(r"usf digits lr_scale=10 seed=0 \(\w+\): epoch \d+/300, best val error "
                     rf"\d+\.\d\d%\n    pid {train.pid} on ", running), running
    stale = text.split("\nstale:\n")[1]
    assert re.search(r"usf digits lr_scale=10 seed=0 \(\w+\): claimed by pid \d+ on .* who is "
                     r"gone; a rerun takes it over", stale)
    assert not (root / "cells" / "mlflow.db").exists()  # launched nothing, made nothing


def read_until(master: int, want, seconds: float) -> str:
    out, deadline = b"", time.time() + seconds
    while time.time() < deadline and not want(out.decode(errors="replace")):
        if select.select([master], [], [], 0.5)[0]:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
    return out.decode(errors="replace")


@pytest.mark.slow
def test_watch_redraws_in_place_until_ctrl_c_which_ends_it_cleanly(swept):
    root, _ = swept
    master, slave = pty.openpty()
    proc = subprocess.Popen(status_cmd(root, "--watch", "--every=1"), cwd=root, stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True,
                            env={**os.environ, "COLUMNS": "200", "TERM": "xterm"})
    os.close(slave)
    try:
        shown = read_until(master, lambda s: s.count("grid quick: 8 cells") >= 3, 240)
        assert shown.count("grid quick: 8 cells") >= 3, shown[-2000:]
        assert "\x1b[1A" in shown or "\x1b[2K" in shown  # cursor moved up to redraw
        os.kill(proc.pid, signal.SIGINT)
        rest = read_until(master, lambda s: False, 5)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert "Traceback" not in shown + rest and "KeyboardInterrupt" not in shown + rest


def test_a_table_cell_is_its_state_when_uniform_else_a_count_of_done():
    nan = float("nan")
    states = pd.Series(["done", "done", "done"])
    assert table_text(states, pd.Series([nan] * 3)) == "done"
    assert table_text(pd.Series(["running"] * 2), pd.Series([4.5, 3.25])) == "running 3.2%"
    mixed = pd.Series(["done", "failed", "running", "missing", "missing"])
    assert table_text(mixed, pd.Series([nan, nan, 7.0, nan, nan])) == \
        "1/5 done, 1 failed, 1 running 7.0%"


@pytest.mark.parametrize(("argv", "message"), [
    ([], "usage: python -m bpgrid.status +grid=NAME"),
    (["+grid=quik"], "bpgrid.status: no grid 'quik' in "),
    (["+grid=quick", "--wacth"], "bpgrid.status: unknown option --wacth"),
    (["+grid=quick", "--every=0"], "--every takes a positive number of seconds"),
    (["+grid=quick", "tracking.urii=x"], "tracking.urii is not a key of tracking"),
])
def test_a_bad_command_line_is_one_message_and_exit_status_2(tmp_path, argv, message):
    out = subprocess.run([sys.executable, "-m", "bpgrid.status", *argv], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not out.stdout


def test_help_prints_the_usage_on_stdout_and_exits_0(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bpgrid.status", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and not out.stderr
    assert "usage: python -m bpgrid.status +grid=NAME [overrides] [--watch" in out.stdout
