"""bpgrid/backends/base.py: the registry of backends, and Backend.run's returned summary of how
each cell ended. A scripted backend stands in for real jobs here; tests/test_sweep.py, test_mps.py
and tests/launch/ run the real ones."""

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from composing import CONF, compose_config, local_overrides
from omegaconf import OmegaConf
from submitit.core.utils import UncompletedJobError

from bpgrid.backends import BACKENDS, Backend, Job, make_backend
from bpgrid.backends.survey import cell_files
from bpgrid.checkpoint import save_json
from bpgrid.config import ConfigError, cell_id, to_dict


def test_an_unknown_launcher_is_an_error_listing_the_launchers(tmp_path):
    with pytest.raises(ConfigError, match="choose hydra/launcher= one of: debug, local, slurm"):
        make_backend({"name": "lsf"}, tmp_path)
    with pytest.raises(ConfigError, match="names no bpgrid launcher"):  # Hydra's own launcher
        make_backend({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
                     tmp_path)


def test_an_unknown_or_bad_setting_is_an_error_naming_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="local takes no setting partition; valid settings: "
                                          "workers, timeout_min, mps"):
        make_backend({"name": "local", "partition": "gpu"}, tmp_path)
    with pytest.raises(ConfigError, match="workers must be a positive integer, got 'abc'"):
        make_backend({"name": "local", "workers": "abc"}, tmp_path)
    with pytest.raises(ConfigError, match="hydra.launcher.mps='sometimes' is not valid"):
        make_backend({"name": "local", "mps": "sometimes"}, tmp_path)


def test_every_launcher_config_builds_its_backend(tmp_path):
    configs = sorted((CONF / "hydra" / "launcher").glob("*.yaml"))
    assert [p.stem for p in configs] == sorted(BACKENDS)
    for path in configs:
        backend = make_backend(OmegaConf.to_container(OmegaConf.load(path)), tmp_path / "jobs")
        assert type(backend) is BACKENDS[path.stem] and backend.folder == tmp_path / "jobs"


def test_slurm_settings_become_submitits_parameters(tmp_path):
    backend = make_backend({"name": "slurm", "partition": "gpu", "gpus_per_node": 1,
                            "setup": ["module load cuda"], "account": None, "mem_gb": 16},
                           tmp_path)
    assert backend.parameters == {
        "timeout_min": 240, "cpus_per_task": 2, "gpus_per_node": 1, "tasks_per_node": 1,
        "nodes": 1, "mem_gb": 16, "slurm_partition": "gpu", "slurm_array_parallelism": 64,
        "slurm_setup": ["module load cuda"]}


def cell_dir(config):
    return cell_files(config).folder


class Scripted(Backend):
    """Each job 'runs' by writing what ``outcomes`` says for its cells' seeds: a result
    (done, diverged), nothing (failed), a dead job (killed), or the lease of a worker that died
    holding the cell (claimed)."""

    name = "scripted"

    def __init__(self, folder: Path, outcomes: dict[int, str], shared: bool = False) -> None:
        super().__init__(folder)
        self.outcomes, self.shared = outcomes, shared

    def plan(self, arrays):  # a cell per array: one job per seed
        cells = [[config] for array in arrays for config in array]
        if self.shared:  # workers sharing one list, as the local backend's do
            return [Job(cells), Job(cells)]
        return [Job([cell]) for cell in cells]

    def submit(self, jobs):
        for n, job in enumerate(jobs):
            for config in job.cells:
                outcome = self.outcomes[config["seed"]]
                if outcome in ("done", "diverged"):
                    save_json(cell_dir(config) / "result.json",
                              {"status": outcome, "train_seconds": 1.5})
                if outcome == "claimed":  # on another machine, silent for an hour
                    save_json(cell_dir(config) / "lease.json", {
                        "token": "t", "machine": "elsewhere", "pid": 1, "log": "worker-1.err",
                        "sweep_id": "", "heartbeat": time.time() - 3600})
            job.handle = SimpleNamespace(
                done=lambda: True, paths=SimpleNamespace(stderr=self.folder / f"{n}.err"),
                result=(self._die if job.cells[0]["seed"] == 3 else lambda: []))

    @staticmethod
    def _die():
        raise UncompletedJobError("job 3 was cancelled")


@pytest.fixture
def cells(tmp_path):
    config = to_dict(compose_config([*local_overrides(tmp_path), "dataset=digits"]))
    return [{**config, "seed": seed} for seed in range(5)]


def test_run_returns_each_cells_status_and_a_failed_cells_job_log(tmp_path, cells, capsys):
    save_json(cell_dir(cells[4]) / "result.json", {"status": "done", "train_seconds": 9.0})
    backend = Scripted(tmp_path / "jobs", {0: "done", 1: "diverged", 2: "failed", 3: "killed"})
    summary = backend.run(cells)
    ids = [cell_id(c) for c in cells]
    assert summary.statuses == {ids[0]: "done", ids[1]: "diverged", ids[2]: "failed",
                                ids[3]: "failed", ids[4]: "skipped"}
    assert summary.line() == "sweep: 5 cells: 1 done, 1 skipped, 1 diverged, 2 failed"
    assert summary.train_seconds == 3.0  # the cells this sweep ran
    logs = {f.cell_id: f.log for f in summary.failed}
    assert logs[ids[2]] == str(tmp_path / "jobs" / "2.err")
    assert logs[ids[3]] == f"{tmp_path / 'jobs' / '3.err'} (UncompletedJobError)"
    progress = capsys.readouterr().err  # in cells, as their files tell it (no failure markers)
    assert "sweep: 3/5 cells: 2 done, 1 diverged, 0 failed, 0 running, 2 left" in progress
    saved = json.loads(summary.save(tmp_path).read_text())
    assert saved["counts"] == summary.counts and saved["statuses"] == summary.statuses


def test_a_failed_cell_of_shared_workers_points_at_the_worker_that_claimed_it(tmp_path, cells):
    backend = Scripted(tmp_path / "jobs", {0: "claimed", 1: "failed", 2: "done", 4: "done"},
                       shared=True)
    summary = backend.run([c for c in cells if c["seed"] != 3])
    logs = {f.cell_id: f.log for f in summary.failed}
    assert logs == {cell_id(cells[0]): "worker-1.err", cell_id(cells[1]): "no job started it"}


def test_a_sweep_says_how_it_packed_its_cells(tmp_path, capsys):
    configs = [to_dict(compose_config([*local_overrides(tmp_path), "dataset=digits",
                                       "schedule.epochs=1", f"lr_scale={s}"])) for s in (1, 10)]
    summary = make_backend({"name": "debug"}, tmp_path / "jobs").run(configs)
    assert summary.counts == {"done": 2}
    assert "sweep: 2 cells to run as 1 fused array of 2 cells\n" in capsys.readouterr().err
