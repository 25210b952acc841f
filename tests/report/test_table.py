import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from synthetic_runs import COLUMNS, write_store

from bpgrid.report.build import build_report
from bpgrid.report.records import RECORD_COLUMNS, ReportError, fetch_records, to_records
from bpgrid.report.render import markdown
from bpgrid.report.table import build_table

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root}/mlflow.db"
    write_store(uri)
    return uri


@pytest.fixture(scope="module")
def table(store):
    records = fetch_records(store, "synthetic", ["method"])
    return build_table(records, "synthetic", COLUMNS, "sgd", 3.0)


def cells(table) -> dict:
    """(dataset, column) -> the cell's fields as attributes, None where the frame has NaN."""
    return {key: SimpleNamespace(**{k: None if pd.isna(v) else v for k, v in row.items()})
            for key, row in table.cells.to_dict("index").items()}


def test_numbers_statuses_marks_and_colours(table):
    c = cells(table)
    assert table.rows == ["mnist", "cifar10"] and table.columns == COLUMNS
    assert (c["mnist", "sgd"].value, c["mnist", "sgd"].marks) == (0.67, "")
    assert c["mnist", "sgd"].best_lr_scale == 1.0
    assert (c["mnist", "usf_bn_bm"].value, c["mnist", "usf_bn_bm"].marks) == (0.5, "†")
    assert c["mnist", "nusf"].status == "failed" and c["mnist", "nusf"].value is None
    assert c["mnist", "brsf_bn_bm"].status == "missing"
    assert c["cifar10", "sgd"].value == pytest.approx(23.0)  # seeds 0 and 1: 22 and 24
    assert c["cifar10", "sgd"].std == pytest.approx(2 ** 0.5)
    assert c["cifar10", "sgd"].marks == "†*"  # best of seed 0 at scale 10; seed 1 has 1 run
    assert c["cifar10", "usf_bn_bm"].colour == "better"  # 19.5 vs 23.0
    assert c["cifar10", "nusf"].value == 40.6 and c["cifar10", "nusf"].colour == "worse"
    assert c["cifar10", "nusf"].marks == "†*"
    assert c["cifar10", "brsf_bn_bm"].status == "diverged"
    assert c["cifar10", "frsf_bn_bm"].colour == "worse"  # exactly 3 points: coloured
    assert c["mnist", "frsf_bn_bm"].colour == "worse"  # 3.67 vs 0.67
    assert c["mnist", "usf_bn_bm"].colour == "" and c["cifar10", "sgd"].colour == ""


@pytest.mark.parametrize("name", ["table.md", "table.tex"])
def test_golden_files(store, tmp_path, name):
    folder = build_report(store, "synthetic", ["method"], COLUMNS, "sgd", 3.0, tmp_path,
                          plots=False)
    assert (folder / name).read_text() == (GOLDEN / name).read_text()


def test_all_formats_and_readme_are_written(store, tmp_path):
    folder = build_report(store, "synthetic", ["method"], COLUMNS, "sgd", 3.0, tmp_path)
    names = {p.name for p in folder.iterdir()}
    assert {"table.md", "table.tex", "table_standalone.tex", "table.html", "table.csv",
            "README.md", "curves_mnist.png", "curves_cifar10.png"} <= names
    html = (folder / "table.html").read_text()
    assert '<td id="T_table_row1_col1" class="data row1 col1" >19.50*</td>' in html
    assert "background-color: #9ad9f5" in _css(html, "#T_table_row1_col1")  # cifar10 uSF+BN+BM
    assert '<td id="T_table_row1_col3" class="data row1 col3" >diverged</td>' in html
    assert "font-style: italic" in _css(html, "#T_table_row1_col3")
    assert "background-color" not in _css(html, "#T_table_row0_col0")  # the SGD baseline
    csv_rows = (folder / "table.csv").read_text().splitlines()
    assert csv_rows[1].startswith("mnist,sgd,SGD,value,0.6700,,,,1.0,3,")
    readme = (folder / "README.md").read_text()
    assert "21 runs" in readme and "best validation error over all epochs and LR scales" in readme


def _css(html: str, selector: str) -> str:
    """The declarations of every rule in the page's <style> blocks that names ``selector``."""
    return " ".join(body for selectors, body in re.findall(r"([^{}<>]+)\{([^}]*)\}", html)
                    if selector in (s.strip() for s in selectors.split(",")))


def test_baseline_from_another_grid(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    write_store(uri, "base", [("mnist", "sgd", 0, 1, "FINISHED", "done", 1.0)])
    write_store(uri, "flip", [("mnist", "brsf_bn_bm", 0, 1, "FINISHED", "done", 5.0),
                              ("mnist", "sgd", 0, 1, "FINISHED", "done", 9.0)])
    records = fetch_records(uri, "flip", ["method"])
    base = fetch_records(uri, "base", ["method"])
    table = build_table(records, "flip", [], "sgd", 3.0, base)
    assert table.columns == ["sgd", "brsf_bn_bm"]  # one SGD column, the baseline grid's
    assert cells(table)["mnist", "sgd"].value == 1.0
    assert cells(table)["mnist", "brsf_bn_bm"].colour == "worse"


def test_no_runs_and_foreign_runs_are_clear_errors(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    with pytest.raises(ReportError, match="no runs in the MLflow experiment 'nothing'.*sweep"):
        fetch_records(uri, "nothing", ["method"])
    write_store(uri, "mixed", [("mnist", "sgd", 0, 1, "FINISHED", "done", 1.0)])
    write_store(uri, "other", [("mnist", "sgd", 0, 1, "FINISHED", "done", 1.0)])
    from bpgrid.tracking import Tracker
    t = Tracker(uri, "mixed")
    run = t.start("x", {"lr_scale": "1.0", "seed": "0"}, {"grid": "other"})
    t.finish(run)
    with pytest.raises(ReportError, match=r"holds runs of grid\(s\) \['other'\]"):
        fetch_records(uri, "mixed", ["method"])


def test_command_line_writes_reports_of_a_grid(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    write_store(uri, "quick", [("digits", "sgd", 0, 1, "FINISHED", "done", 2.0)])
    out = subprocess.run([sys.executable, "-m", "bpgrid.report", "+grid=quick",
                          f"tracking.uri={uri}", f"report.out_dir={tmp_path}/reports"],
                         capture_output=True, text=True, check=True)
    assert f"{tmp_path}/reports/quick/table.md" in out.stdout
    assert "| digits | 2.00 |" in (tmp_path / "reports/quick/table.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "bpgrid.report", "+grid=experiment_a",
                          f"tracking.uri={uri}"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no runs in the MLflow experiment 'experiment_a'" in bad.stderr


@pytest.mark.latex
def test_standalone_table_compiles_with_pdflatex(store, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (CI installs TeX Live)") \
            if not _must_run() else pytest.fail("pdflatex missing with BPGRID_LATEX=1")
    folder = build_report(store, "synthetic", ["method"], COLUMNS, "sgd", 3.0, tmp_path,
                          plots=False)
    for tex in ("table_standalone.tex",):
        done = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode", tex],
                              cwd=folder, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:]
        assert (folder / tex.replace(".tex", ".pdf")).stat().st_size > 1000


def _must_run() -> bool:
    import os
    return os.environ.get("BPGRID_LATEX") == "1"


def _records(*rows) -> pd.DataFrame:
    """Records of one seed from (dataset, column, best[, lr_scale[, status]]) tuples."""
    def record(dataset, column, best, scale=1.0, status="done"):
        return (dataset, column, column, scale, 0, status, best, f"run-{dataset}-{column}", "v")
    return pd.DataFrame([record(*r) for r in rows], columns=RECORD_COLUMNS).astype({"best": float})


def test_runs_become_one_record_per_cell_latest_first():
    runs = pd.DataFrame([
        {"run_id": "old", "state": "FAILED", "start_time": 1, "tags.cell_id": "a",
         "tags.dataset": "mnist", "tags.method": "brsf_bn_bm", "tags.method_label": "brSF",
         "params.lr_scale": "10.0", "params.seed": "0", "params.feedback.flip_prob": "0.25"},
        {"run_id": "new", "state": "FINISHED", "start_time": 2, "tags.cell_id": "a",
         "tags.dataset": "mnist", "tags.method": "brsf_bn_bm", "tags.method_label": "brSF",
         "tags.status": "diverged", "params.lr_scale": "10.0", "params.seed": "0",
         "params.feedback.flip_prob": "0.25", "metrics.best_val_error": 7.5},
        {"run_id": "live", "state": "RUNNING", "start_time": 3, "tags.cell_id": "b",
         "tags.dataset": "cifar10", "tags.method": "sgd", "params.lr_scale": "1.0",
         "params.seed": "1"}])
    records = to_records(runs, ["method", "feedback.flip_prob"]).set_index("run_id")
    assert list(records.index) == ["new", "live"]
    assert records.loc["new", ["column", "label", "status", "best", "lr_scale"]].tolist() == [
        "brsf_bn_bm/0.25", "brSF flip_prob=0.25", "diverged", 7.5, 10.0]
    assert records.loc["live", ["column", "label", "status", "seed"]].tolist() == [
        "sgd/?", "sgd flip_prob=?", "running", 1]
    assert pd.isna(records.loc["live", "best"])


def test_cells_without_any_number_say_why():
    table = build_table(_records(("mnist", "sgd", None, 1.0, "failed"),
                                 ("mnist", "nusf", None, 1.0, "running"),
                                 ("mnist", "nusf", None, 10.0, "diverged")),
                        "a", ["sgd", "nusf"], "sgd", 3.0)
    c = cells(table)
    assert (c["mnist", "sgd"].status, c["mnist", "nusf"].status) == ("failed", "diverged")
    assert c["mnist", "nusf"].value is None and c["mnist", "nusf"].colour == ""
    assert "| MNIST | *failed* | *diverged* |" in markdown(table)


def test_experiment_b_plot_of_error_against_flip_probability(tmp_path):
    from bpgrid.report.figures import flip_prob_plot
    records = _records(*((d, f"{m}/{p}", 10 + 20 * p + (5 if m == "brsf_bn_bm" else 0))
                         for d in ("mnist", "cifar10") for m in ("brsf_bn_bm", "frsf_bn_bm")
                         for p in (0.0, 0.25, 0.5, 1.0)))
    table = build_table(records, "experiment_b", [], "sgd", 3.0)
    path = flip_prob_plot(table, tmp_path / "flip.png")
    assert path.stat().st_size > 5000
    assert flip_prob_plot(build_table(_records(("mnist", "sgd", 1.0)), "a", [], "sgd", 3.0),
                          tmp_path / "none.png") is None


def test_paper_side_by_side_differences():
    from bpgrid.report.paper import comparison, paper_numbers
    paper = paper_numbers("experiment_a")
    assert paper["cifar10", "sgd"] == 22.73
    table = build_table(_records(("cifar10", "sgd", 23.0), ("cifar10", "nusf", 50.0),
                                 ("mnist", "sgd", None, 1.0, "failed")), "experiment_a",
                        ["sgd", "nusf"], "sgd", 3.0)
    text, rows = comparison(table, paper)
    assert "| CIFAR10 | 23.00 / 22.73 (+0.27) | 50.00 / 40.60 (+9.40) |" in text
    assert "| MNIST | failed / 0.67 | missing / 0.60 |" in text
    assert "cifar10,sgd,23.0000,22.73,0.2700" in rows


def test_alignment_curve_is_the_mean_angle_over_layers(tmp_path):
    from mlflow.tracking import MlflowClient

    from bpgrid.report.figures import _curve, curves
    uri = f"sqlite:///{tmp_path}/m.db"
    write_store(uri, "align", [("mnist", "sgd", 0, 1, "FINISHED", "done", 1.0)])
    table = build_table(fetch_records(uri, "align", ["method"]), "align", [], "sgd", 3.0)
    client, run = MlflowClient(uri), cells(table)["mnist", "sgd"].best_run
    for epoch, (first, second) in enumerate([(80, 60), (70, 50), (60, 40)], 1):
        client.log_metric(run, "grad_angle/0", first, step=epoch)
        client.log_metric(run, "grad_angle/1", second, step=epoch)
    assert _curve(client, run, "grad_angle/").to_dict() == {1: 70.0, 2: 60.0, 3: 50.0}
    assert [p.name for p in curves(table, uri, tmp_path)] == ["curves_mnist.png",
                                                               "alignment_mnist.png"]
