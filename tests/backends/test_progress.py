"""bpgrid/backends/progress.py: a sweep's live cell counts, redrawn in place on a terminal (a real
pseudo-terminal here) and a plain line every few seconds in a log; the worker logs name each cell
as it starts and ends. The sweeps are real, through the CLI."""

import io
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from composing import compose_config, local_overrides

from bpgrid.backends.progress import SweepProgress
from bpgrid.backends.survey import cell_files
from bpgrid.checkpoint import save_json
from bpgrid.config import to_dict

# four cells of the quick grid: two train (seeds 0, 1), two fail (no such first layer)
CELLS = ["method=sgd", "lr_scale=10", "dataset=digits", "schedule.epochs=1", "seed=0,1",
         "model.pretrained_first_layer=null,/nonexistent/first.pt"]
FINAL = "4/4 cells: 2 done, 0 diverged, 2 failed, 0 running, 0 left"
LINE = re.compile(r"sweep: (\d+)/4 cells: (\d+) done, 0 diverged, (\d+) failed, (\d+) running, "
                  r"(\d+) left; elapsed \d+:\d\d:\d\d, ETA (\?|\d+:\d\d:\d\d)")


def sweep_cmd(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bpgrid.sweep", "+grid=quick", *local_overrides(root),
            f"hydra.sweep.dir={root}/multirun", *CELLS, *args]


def test_the_counts_follow_the_cells_files_and_a_log_gets_plain_lines(tmp_path):
    configs = [to_dict(compose_config([*local_overrides(tmp_path), "+grid=quick",
                                       f"lr_scale={s}"], "sweep")) for s in (1, 10)]
    out = io.StringIO()
    with SweepProgress(configs, "s1", every=0.05, stream=out) as progress:
        time.sleep(0.3)
        save_json(cell_files(configs[0]).result, {"status": "done"})
        progress.poke()
        time.sleep(0.3)
        save_json(cell_files(configs[1]).failure, {"error": "boom", "sweep_id": "s1"})
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert len(lines) == len(set(lines)) > 2  # a line that says nothing new is not repeated
    assert lines[0].startswith("sweep: 0/2 cells: 0 done, 0 diverged, 0 failed, 0 running, "
                               "2 left; elapsed 0:00:00, ETA ?")
    assert any(line.startswith("sweep: 1/2 cells: 1 done, 0 diverged, 0 failed, 0 running, "
                               "1 left") for line in lines)
    assert lines[-1].startswith("sweep: 2/2 cells: 1 done, 0 diverged, 1 failed, 0 running, "
                                "0 left")
    assert not lines[-1].endswith("ETA ?")  # two cells ended in this sweep: an estimate


def test_cells_finished_before_the_sweep_count_as_done_but_not_for_the_eta(tmp_path):
    config = to_dict(compose_config([*local_overrides(tmp_path), "+grid=quick"], "sweep"))
    save_json(cell_files(config).result, {"status": "done"})
    out = io.StringIO()
    with SweepProgress([config, config], "s1", every=10, stream=out):
        pass
    assert out.getvalue().strip().endswith("1/1 cells: 1 done, 0 diverged, 0 failed, 0 running, "
                                           "0 left; elapsed 0:00:00, ETA ?")


@pytest.mark.slow
def test_a_local_sweep_logs_plain_progress_lines_and_its_workers_name_each_cell(tmp_path):
    done = subprocess.run(sweep_cmd(tmp_path, "hydra/launcher=local", "grid.progress_seconds=1"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "\r" not in done.stderr and "jobs finished" not in done.stderr
    lines = [LINE.match(line) for line in done.stderr.splitlines()
             if line.startswith("sweep: ") and "/4 cells:" in line]
    assert len(lines) >= 2 and all(lines), done.stderr[-3000:]
    assert lines[-1].group(0).startswith(f"sweep: {FINAL}")
    for m in lines:  # every line accounts for every cell
        assert sum(int(m.group(k)) for k in (2, 3, 4, 5)) == 4
    logs = "".join(p.read_text() for p in (tmp_path / "multirun" / "jobs").glob("*.err"))
    for seed in (0, 1):
        cell = f"(method=sgd dataset=digits lr_scale=10 seed={seed}): "
        assert cell + "started" in logs
        assert re.search(re.escape(cell) + r"done, best val error \d+\.\d\d% \(epoch 1\), "
                         r"1 epochs, \d+\.\d s", logs)
        assert (cell + "failed after ") in logs
    assert "FileNotFoundError: pretrained_first_layer: no checkpoint file" in logs


def run_in_pty(cmd: list[str], cwd: Path) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as its stdin, stdout and stderr; all it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "COLUMNS": "200", "TERM": "xterm"})
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not data:
            break
        out += data
    os.close(master)
    return proc.wait(timeout=60), out.decode(errors="replace")


@pytest.mark.slow
def test_on_a_terminal_the_progress_is_one_line_redrawn_in_place(tmp_path):
    code, out = run_in_pty(sweep_cmd(tmp_path, "hydra/launcher=debug"), tmp_path)
    assert code == 1, out[-3000:]
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    drawn = [m.group(0) for m in re.finditer(r"sweep [━╺╸ ]*\s*\d/4 cells: [^\r\n]*", plain)]
    assert len(drawn) >= 3, plain[-3000:]
    assert out.count("\r\x1b[2K") >= 2  # back to the line's start, line erased, drawn again
    assert FINAL in drawn[-1]
    assert "sweep: 4 cells: 2 done, 0 skipped, 0 diverged, 2 failed" in plain
    assert "(method=sgd dataset=digits lr_scale=10 seed=1): started" in plain
