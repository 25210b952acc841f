"""bpgrid/cli.py through the real command lines of train and sweep (report's are in
tests/report/test_main.py): --help, and bad input as one message, exit status 2, no traceback,
nothing started; and the missing-data check, before any cell is composed and in dry runs."""

import os
import subprocess
import sys

import pytest
from composing import local_overrides

from bpgrid.cli import BAD_INPUT


def command(module: str, *argv: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("module", ["bpgrid.train", "bpgrid.sweep", "bpgrid.report"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_the_usage_and_exits_0(module, flag, tmp_path):
    out = command(module, "+grid=quick", flag, cwd=tmp_path)
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.startswith(f"usage: python -m {module} ")
    assert "quick, report_clip" in out.stdout.splitlines()[0]  # the grids
    assert "Exit status" in out.stdout or module == "bpgrid.report"
    assert "See README.md" in out.stdout
    assert list(tmp_path.iterdir()) == []


SLOW = pytest.mark.slow  # each start costs seconds: the fast suite keeps one of each kind
BAD = [  # (module, overrides, what the one line says)
    ("bpgrid.train", ["dataset=nope"], ["dataset=nope names no option of dataset",
                                        "choose one of: caltech101", "mnist1d"]),
    pytest.param("bpgrid.train", ["lr_scale=abc"],
                 ["lr_scale: must be a positive number, got 'abc'"], marks=SLOW),
    pytest.param("bpgrid.train", ["method="], ["method= names no option of method", "usf_bn_bm"],
                 marks=SLOW),
    ("bpgrid.train", ["+grid=quik"], ["no grid 'quik'", "(did you mean quick?)"]),
    pytest.param("bpgrid.train", ["seed=1.5"], ["seed: must be a non-negative integer, got 1.5"],
                 marks=SLOW),
    ("bpgrid.train", ["+foo=1"], ["foo: not a key of the config (its keys: alignment,"]),
    ("bpgrid.train", ["schedule.epoch=3"], ["schedule.epoch is not a key of schedule",
                                            "its keys: name, epochs, lr_epochs"]),
    ("bpgrid.train", ["lr_scale=1,10"], ["lr_scale=1,10 gives several values",
                                         "python -m bpgrid.sweep"]),
    ("bpgrid.train", ["--cfg", "job"], ["unknown option --cfg"]),
    pytest.param("bpgrid.train", ["--multirun"], ["unknown option --multirun"], marks=SLOW),
    ("bpgrid.train", ["dataset=timit80", "dataset.download=true"],
     ["dataset.download: timit80 cannot be downloaded; get it by hand"]),
    ("bpgrid.sweep", ["+grid=quick", "foo=1"], ["foo is not a key of the config",
                                                "lr_scale"]),
    ("bpgrid.sweep", ["+grid=quick", "a=b=c"], ["cannot read the override 'a=b=c'",
                                                "override_grammar"]),
    ("bpgrid.sweep", ["+grid=quick", "schedule.epochs=-1"],
     ["schedule.epochs: must be a positive int, got -1", "in the cell: method=sgd"]),
    ("bpgrid.sweep", ["+grid=quick", "hydra/launcher=nope"],
     ["hydra/launcher=nope names no option of hydra/launcher; choose one of: debug, local, "
      "slurm"]),
    pytest.param("bpgrid.sweep", ["+grid=quick", "hydra.launcher.workers=abc"],
                 ["hydra.launcher.workers must be a positive integer, got 'abc'"], marks=SLOW),
    pytest.param("bpgrid.sweep", ["+grid=quick", "+foo=1"],
                 ["foo: not a key of the config (its keys: alignment,"], marks=SLOW),
    pytest.param("bpgrid.sweep", ["+grid=quick", "lr_scale=abc"],
                 ["lr_scale: must be a positive number, got 'abc'"], marks=SLOW),
    ("bpgrid.sweep", ["+grid=nope"], ["no grid 'nope' in ", "grids: beyond, bm_settings"]),
    ("bpgrid.sweep", ["+grid=quick", "method=sgd", "dataset=mnist1d", "--cfg", "job"],
     ["unknown option --cfg"]),
]


@pytest.mark.parametrize(("module", "argv", "says"), BAD, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else None)
def test_a_bad_override_is_one_line_exit_2_and_nothing_started(module, argv, says, tmp_path):
    out = command(module, *argv, cwd=tmp_path)
    assert out.returncode == BAD_INPUT, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith(f"{module}: ")
    assert all(s in out.stderr for s in says), out.stderr
    assert list(tmp_path.iterdir()) == []  # no store, no cells, no outputs


def test_the_sweep_without_a_grid_says_so_and_gives_its_usage(tmp_path):
    out = command("bpgrid.sweep", "seed=1", cwd=tmp_path)
    assert out.returncode == BAD_INPUT and out.stdout == ""
    assert out.stderr.splitlines()[0] == "bpgrid.sweep: no grid given"
    assert out.stderr.splitlines()[1].startswith("usage: python -m bpgrid.sweep +grid=NAME")


def empty_data(tmp_path):
    """A data folder whose mnist and timit80 folders are empty."""
    for name in ("mnist", "timit80"):
        (tmp_path / "data" / name).mkdir(parents=True)
    return {"BPGRID_DATA": str(tmp_path / "data")}


def missing_lines(tmp_path) -> list[str]:
    data = tmp_path / "data"
    return [
        "2 datasets missing, so nothing was started:",
        f"  mnist: no files at {data}/mnist; expected {data}/mnist/MNIST/raw/"
        "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; dataset.download=true fetches it "
        "with torchvision",
        f"  timit80: no files at {data}/timit80; expected {data}/timit80/{{features,labels}}.npy; "
        "it cannot be downloaded; get it by hand: compute frame features from TIMIT",
    ]


def assert_lists_both(stderr: str, tmp_path) -> None:
    lines = stderr.splitlines()
    expected = missing_lines(tmp_path)
    assert lines[0] == f"bpgrid.sweep: {expected[0]}"
    assert lines[1] == expected[1]
    assert lines[2].startswith(expected[2]) and "download=true" not in lines[2]
    assert lines[3] == "Put the files there, or point dataset.root=PATH at them."
    assert "Traceback" not in stderr


def test_a_grid_with_two_missing_datasets_lists_both_before_composing_any_cell(tmp_path):
    env = empty_data(tmp_path)
    # seed=-1 fails each cell's validation: the sweep stops before composing its cells
    argv = ["+grid=quick", "dataset=timit80,digits,mnist", "method=sgd,bm", "seed=-1",
            *local_overrides(tmp_path)]
    runs = [command("bpgrid.sweep", *argv, cwd=tmp_path, env=env) for _ in range(2)]
    for out in runs:
        assert out.returncode == BAD_INPUT and out.stdout == ""
        assert_lists_both(out.stderr, tmp_path)
        assert "seed" not in out.stderr
    assert runs[0].stderr == runs[1].stderr  # a stable order
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no store, cells, multirun


def test_a_dry_run_shows_the_grid_lists_the_missing_datasets_and_exits_2(tmp_path):
    env = empty_data(tmp_path)
    argv = ["+grid=quick", "dataset=mnist,timit80", "method=sgd", "grid.dry_run=true",
            *local_overrides(tmp_path)]
    out = command("bpgrid.sweep", *argv, cwd=tmp_path, env=env)
    assert out.returncode == BAD_INPUT
    assert "grid quick: 10 cells (dry run, nothing launched)" in out.stdout
    assert "0 finished, 0 owned by live jobs, 10 to run" in out.stdout
    assert_lists_both(out.stderr, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_train_with_a_missing_dataset_gives_the_same_message_for_it(tmp_path):
    env = empty_data(tmp_path)
    out = command("bpgrid.train", "dataset=timit80", *local_overrides(tmp_path), cwd=tmp_path,
                  env=env)
    assert out.returncode == BAD_INPUT and out.stdout == ""
    lines = out.stderr.splitlines()
    assert lines[0] == "bpgrid.train: 1 dataset missing, so nothing was started:"
    assert lines[1].startswith(missing_lines(tmp_path)[2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


# run() itself, with a stand-in command: its flags, and which errors it tells or lets through

def test_a_commands_own_flags_pass_through_and_others_are_refused(capsys):
    from bpgrid.cli import Command, run

    seen = []
    watch = Command("bpgrid.watchful", "+grid=NAME [--watch]", "Watches.", options=("--watch",))
    assert run(watch, lambda argv: seen.append(argv) or 0, ["+grid=quick", "--watch"]) == 0
    assert seen == [["+grid=quick", "--watch"]]
    assert run(watch, lambda argv: 0, ["+grid=quick", "--wach"]) == BAD_INPUT
    assert capsys.readouterr().err == ("bpgrid.watchful: unknown option --wach: bpgrid.watchful "
                                       "takes key=value overrides and --watch only (--help shows "
                                       "them)\n")


def test_only_errors_of_bad_input_are_told_others_keep_their_traceback(capsys):
    from bpgrid.cli import Command, run
    from bpgrid.config import ConfigError

    class Refused(Exception):
        pass

    def fails(error):
        def body(argv):
            raise error
        return body

    cmd = Command("bpgrid.x", "[overrides]", "X.", needs_grid=False)
    assert run(cmd, fails(ConfigError("seed: bad\n  in the cell: seed=-1")), []) == BAD_INPUT
    assert capsys.readouterr().err == "bpgrid.x: seed: bad in the cell: seed=-1\n"
    assert run(cmd, fails(Refused("no store")), [], errors=lambda: (Refused,)) == BAD_INPUT
    assert capsys.readouterr().err == "bpgrid.x: no store\n"
    with pytest.raises(ZeroDivisionError):  # a bug is no bad input: it is not hidden
        run(cmd, fails(ZeroDivisionError("x")), [], errors=lambda: (Refused,))
