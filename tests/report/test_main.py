"""``python -m bpgrid.report``: the report of a grid, and one clear message, exit status 2 and
no traceback for a bad command line."""

import subprocess
import sys

import pytest
from composing import compose_config
from synthetic_runs import write_cell_run

from bpgrid.report.__main__ import main


def run_report(*argv: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpgrid.report", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_command_line_writes_the_report_of_a_grid(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    cell = compose_config(["+grid=quick", "method=sgd", "dataset=digits", "lr_scale=1"], "sweep")
    write_cell_run(uri, cell, best=2.0)
    out = run_report("+grid=quick", "method=sgd,bm", f"tracking.uri={uri}",
                     f"report.out_dir={tmp_path}/reports")
    assert out.returncode == 0, out.stderr
    assert f"{tmp_path}/reports/quick/table.md" in out.stdout
    assert "report: grid quick: composing its 20 cells" in out.stderr
    text = (tmp_path / "reports/quick/table.md").read_text()
    assert "| digits | 2.00* | *missing* |" in text
    assert "| MNIST-1D | *missing* | *missing* |" in text


def test_help_prints_the_usage_on_stdout_and_exits_0(tmp_path):
    out = run_report("--help", cwd=tmp_path)
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.startswith("usage: python -m bpgrid.report +grid=NAME [overrides]; grids: "
                                 "beyond, ")
    assert "report.threshold=5" in out.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["+grid=experimnt_a"], "bpgrid.report: no grid 'experimnt_a' in "),
    (["+grid=quick", "report.treshold=5"],
     "report.treshold is not a key of report (did you mean threshold?); its keys: baseline, "),
])
def test_help_a_typo_in_the_grid_name_or_a_bad_override_is_one_message(tmp_path, argv, message):
    out = run_report(*argv, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no store made, no report written


@pytest.mark.parametrize(("argv", "message"), [
    ([], "grids: beyond, bm_settings, experiment_a"),
    (["+grid=quick", "-x"], "unknown option -x"),
    (["+grid=experimnt_a"], "(did you mean experiment_a or "),
    (["+grid=quick", "lr_scal=1,10"], "bpgrid.report: could not override 'lr_scal=1'"),
    (["+grid=quick", "method=sgdd"], "bpgrid.report: method=sgdd names no option of method (did "
                                     "you mean sgd?); choose one of: bm, bm2,"),
    (["+grid=quick", "method=sgd", "tracking.uri=sqlite:///none.db"],
     "bpgrid.report: no MLflow store at sqlite:///none.db"),
    (["+grid=quick", "method=sgd", "report.baseline=bm"],
     "bpgrid.report: report.baseline='bm' is no column of grid quick"),
])
def test_every_bad_command_line_is_one_message_and_exit_status_2(tmp_path, monkeypatch, capsys,
                                                                  argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow.db").touch()  # the default store exists (empty)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("bpgrid.report:") <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]
