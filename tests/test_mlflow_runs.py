"""A sweep's MLflow runs through the real CLI: names, parameters as typed, the epoch as step, the
sweep's parent run and its config; and the same runs in a real ``mlflow ui`` and Chromium.

The browser test skips where Chromium is absent, unless ``BPGRID_BROWSER=1`` (CI), where that
fails. ``BPGRID_SCREENSHOT=docs/mlflow-runs.png`` also writes its screenshot there.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from composing import local_overrides
from mlflow.tracking import MlflowClient
from PIL import Image

import bpgrid

AXES = ["dataset=digits", "method=sgd,bn", "lr_scale=1,1e-1", "schedule.epochs=2"]
NAMES = {f"{m}/digits/lr{s}/s0" for m in ("sgd", "bn") for s in ("1", "0.1")}
SWEEP_ID = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_quick_[0-9a-f]{4}")


def sweep(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpgrid.sweep", "+grid=quick", *AXES,
                           *local_overrides(root), f"hydra.sweep.dir={root}/multirun",
                           "hydra/launcher=debug"], cwd=root, capture_output=True, text=True)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A store with one sweep of 4 digits cells (2 epochs each)."""
    root = tmp_path_factory.mktemp("swept")
    done = sweep(root)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    return root, client, client.get_experiment_by_name("quick").experiment_id


def runs(client: MlflowClient, experiment: str, where: str = "") -> list:
    return client.search_runs([experiment], where, max_results=100)


@pytest.mark.slow
def test_cells_are_named_runs_under_the_sweeps_run_with_params_as_typed(swept):
    root, client, experiment = swept
    cells = [r for r in runs(client, experiment) if "cell_id" in r.data.tags]
    (parent,) = [r for r in runs(client, experiment) if "cell_id" not in r.data.tags]
    assert {r.info.run_name for r in cells} == NAMES
    sweep_id = parent.data.tags["sweep_id"]
    assert SWEEP_ID.fullmatch(sweep_id) and parent.data.tags["bpgrid.kind"] == "sweep"
    day, clock = sweep_id.split("_")[:2]
    assert parent.info.run_name == f"quick {day} {clock.replace('-', ':')}"
    assert parent.info.status == "FINISHED" and parent.data.metrics["cells_done"] == 4
    assert parent.data.params["lr_scale"] == "1,0.1" and parent.data.params["cells"] == "4"
    assert parent.data.params["method"] == "sgd,bn" and "cells_dir" not in \
        parent.data.params  # the axes and factors only; the whole command in sweep.yaml
    for run in cells:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["sweep_id"] == sweep_id
        assert run.data.params["lr_scale"] in {"1", "0.1"}
        assert "epoch" not in run.data.metrics
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_error")]
        assert sorted(steps) == [1, 2]
    found = runs(client, experiment, "params.lr_scale = '1'")
    assert sorted(r.info.run_name for r in found) == sorted(n for n in NAMES if "lr1/" in n)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {
        "grid.yaml", "multirun.yaml", "sweep.yaml", "summary.json"}
    saved = yaml.safe_load(Path(client.download_artifacts(parent.info.run_id, "sweep.yaml",
                                                          str(root))).read_text())
    assert saved["sweep_id"] == sweep_id and saved["axes"]["method"] == ["sgd", "bn"]
    assert "+grid=quick" in saved["command"]
    frame = bpgrid.results("quick", f"sqlite:///{root}/mlflow.db", overrides=AXES)
    assert frame.status.tolist() == ["done"] * 4 and frame.run_id.isin(
        [r.info.run_id for r in cells]).all()


@pytest.mark.slow
def test_a_rerun_is_a_new_sweep_and_a_resumed_cell_keeps_its_run_and_parent(tmp_path):
    first = sweep(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("quick").experiment_id
    before = {r.info.run_name: r for r in runs(client, experiment)}
    name = sorted(NAMES)[0]
    cell = before[name]
    (tmp_path / "cells" / cell.data.tags["cell_id"] / "result.json").unlink()  # as if killed
    again = sweep(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 cells: 1 done, 3 skipped" in again.stdout
    after = runs(client, experiment)
    parents = [r for r in after if "cell_id" not in r.data.tags]
    assert len(parents) == 2 and len(after) == 6  # one more sweep run, no new cell run
    new_parent = next(p for p in parents if p.info.run_id not in
                      {r.info.run_id for r in before.values()})
    resumed = client.get_run(cell.info.run_id)
    assert resumed.data.tags["mlflow.parentRunId"] == cell.data.tags["mlflow.parentRunId"]
    assert resumed.data.tags["sweep_id"] == new_parent.data.tags["sweep_id"] != \
        cell.data.tags["sweep_id"]
    assert resumed.info.status == "FINISHED"


@pytest.mark.slow
def test_a_cell_trained_alone_has_a_readable_run_and_no_parent(workdir):
    out = subprocess.run([sys.executable, "-m", "bpgrid.train", *local_overrides(workdir),
                          "method=brsf_bn_bm", "feedback.flip_prob=0.25", "lr_scale=1e-1",
                          "schedule.epochs=1"], cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    run = MlflowClient(f"sqlite:///{workdir}/mlflow.db").get_run(
        json.loads(out.stdout.splitlines()[-1])["run_id"])
    assert run.info.run_name == "brsf_bn_bm[feedback.flip_prob=0.25]/digits/lr0.1/s0"
    assert run.data.params["lr_scale"] == "0.1" and "mlflow.parentRunId" not in run.data.tags


# ----------------------------------------------------------------------------- in a browser

def chromium() -> str:
    found = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                                "google-chrome")) if p), None)
    if found is None:
        if os.environ.get("BPGRID_BROWSER") == "1":
            pytest.fail("BPGRID_BROWSER=1 but no chromium on PATH")
        pytest.skip("no chromium on PATH (apt-get install chromium; BPGRID_BROWSER=1 "
                    "makes its absence fail)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}",
                                     json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def wait_until_up(server: subprocess.Popen, port: int, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow ui exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f"mlflow ui did not answer on port {port} within {seconds} s")


def runs_view(client: MlflowClient, experiment: str) -> str:
    """A view of the runs list kept in the experiment (MLflow's shared views): every run of the
    sweep flat under its sweep id, sorted by name, LR scale and best error beside them."""
    state = {"searchFilter": "", "orderByKey": "tags.`mlflow.runName`", "orderByAsc": True,
             "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [],
             "modelVersionFilter": "All Runs", "runsHiddenMode": "SHOW_ALL",
             "selectedColumns": ["params.`lr_scale`", "params.`seed`",
                                 "metrics.`best_val_error`", "tags.`status`"],
             "columnOrder": [], "columnWidths": {},
             "groupBy": {"aggregateFunction": "min",
                         "groupByKeys": [{"mode": "tag", "groupByData": "sweep_id"}]},
             "groupsExpanded": {}, "viewMaximized": False, "runListHidden": False,
             "isAccordionReordered": False, "useGroupedValuesInCharts": True,
             "hideEmptyCharts": True,
             "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0,
                                       "selectedXAxisMetricKey": ""}}
    client.set_experiment_tag(experiment, "mlflow.sharedViewState.bpgrid", json.dumps(state))
    return "bpgrid"


@pytest.mark.slow
@pytest.mark.browser
def test_the_runs_list_in_mlflow_ui_shows_the_names(swept, tmp_path):
    browser = chromium()
    root, client, experiment = swept
    view = runs_view(client, experiment)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
         f"sqlite:///{root}/mlflow.db", "--host", "127.0.0.1", "--port", str(port)],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_up(server, port)
        found = api(port, "runs/search", {"experiment_ids": [experiment], "max_results": 100})
        names = {r["info"]["run_name"] for r in found["runs"]}
        assert NAMES <= names and len(names) == 5  # the cells and their sweep
        typed = api(port, "runs/search", {"experiment_ids": [experiment],
                                          "filter": "params.lr_scale = '0.1'"})
        assert {r["info"]["run_name"] for r in typed["runs"]} == {
            n for n in NAMES if "/lr0.1/" in n}
        shot = tmp_path / "runs.png"
        url = (f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs?"
               f"{urllib.parse.urlencode({'viewStateShareKey': view})}")
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1800,700",
                        "--virtual-time-budget=30000", url],
                       capture_output=True, timeout=300, check=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    image = Image.open(shot)
    assert image.size == (1800, 700)
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert shot.stat().st_size > 50_000 and len(colours) > 500  # text and table, no spinner
    if os.environ.get("BPGRID_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["BPGRID_SCREENSHOT"])
