import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from synthetic_runs import COLUMNS, grid_cells, records, write_store

from bpgrid.report.build import write_report
from bpgrid.report.records import RECORD_COLUMNS
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
    return build_table(records(store), "synthetic", COLUMNS, "sgd", 3.0)


def report(table, uri, folder, plots=False):
    return write_report(table, folder, uri, ["+grid=synthetic"], "synthetic", plots=plots)


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
def test_golden_files(table, store, tmp_path, name):
    folder = report(table, store, tmp_path)
    assert (folder / name).read_text() == (GOLDEN / name).read_text()


def test_all_formats_and_readme_are_written(table, store, tmp_path):
    folder = report(table, store, tmp_path, plots=True)
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
    assert "the grid defines 33 cells; 21 have a run" in readme
    assert "the runs found are in `synthetic` (21)" in readme
    assert "best validation error over all epochs and LR scales (0.1, 1, 10)" in readme


def _css(html: str, selector: str) -> str:
    """The declarations of every rule in the page's <style> blocks that names ``selector``."""
    return " ".join(body for selectors, body in re.findall(r"([^{}<>]+)\{([^}]*)\}", html)
                    if selector in (s.strip() for s in selectors.split(",")))


def test_baseline_from_another_grid(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    write_store(uri, "base", [("mnist", "sgd", 0, 1, "FINISHED", "done", 1.0)])
    write_store(uri, "flip", [("mnist", "brsf_bn_bm", 0, 1, "FINISHED", "done", 5.0),
                              ("mnist", "sgd", 0, 10, "FINISHED", "done", 9.0)])
    flip = records(uri, grid_cells([("mnist", "brsf_bn_bm", 0, 1), ("mnist", "sgd", 0, 10)]))
    base = records(uri, grid_cells([("mnist", "sgd", 0, 1)]))
    table = build_table(flip, "flip", [], "sgd", 3.0, base)
    assert table.columns == ["sgd", "brsf_bn_bm"]  # one SGD column, the baseline grid's
    assert cells(table)["mnist", "sgd"].value == 1.0
    assert cells(table)["mnist", "brsf_bn_bm"].colour == "worse"


@pytest.mark.latex
def test_standalone_table_compiles_with_pdflatex(store, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (CI installs TeX Live)") \
            if not _must_run() else pytest.fail("pdflatex missing with BPGRID_LATEX=1")
    folder = report(build_table(records(store), "synthetic", COLUMNS, "sgd", 3.0), store,
                    tmp_path)
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
        run = None if status == "missing" else f"run-{dataset}-{column}-{scale:g}"
        return (f"{dataset}-{column}-{scale:g}", dataset, column, column, scale, 0, status, best,
                run, "e", "v")
    return pd.DataFrame([record(*r) for r in rows], columns=RECORD_COLUMNS).astype({"best": float})


def test_cells_without_any_number_say_why():
    table = build_table(_records(("mnist", "sgd", None, 1.0, "failed"),
                                 ("mnist", "nusf", None, 1.0, "running"),
                                 ("mnist", "nusf", None, 10.0, "diverged")),
                        "a", ["sgd", "nusf"], "sgd", 3.0)
    c = cells(table)
    assert (c["mnist", "sgd"].status, c["mnist", "nusf"].status) == ("failed", "diverged")
    assert c["mnist", "nusf"].value is None and c["mnist", "nusf"].colour == ""
    assert "| MNIST | *failed* | *diverged* |" in markdown(table)


def test_marks_are_judged_per_dataset_over_the_scales_the_grid_asked_for():
    """digits was asked for one more scale (1000) than mnist1d: it marks no mnist1d cell *,
    and moves digits' edge, so a best scale of 100 is † on mnist1d only."""
    scales = [100, 10, 1, 0.1, 0.01]
    table = build_table(_records(
        *(("mnist1d", "sgd", 5.0 - (s == 100), s) for s in scales),
        *(("digits", "sgd", 5.0 - (s == 100), s) for s in scales),
        ("digits", "sgd", None, 1000, "missing")), "g", ["sgd"], "sgd", 3.0)
    c = cells(table)
    assert (c["mnist1d", "sgd"].value, c["mnist1d", "sgd"].marks) == (4.0, "†")
    assert (c["digits", "sgd"].value, c["digits", "sgd"].marks) == (4.0, "*")
    assert table.scales == [0.01, 0.1, 1, 10, 100, 1000]


def test_cells_that_never_started_or_still_run_are_shown_and_make_a_number_partial():
    table = build_table(_records(("mnist", "sgd", 1.0, 1.0),
                                 ("mnist", "sgd", None, 10.0, "running"),
                                 ("mnist", "bm", None, 1.0, "missing"),
                                 ("mnist", "bn", None, 1.0, "missing"),
                                 ("mnist", "bn", None, 10.0, "running"),
                                 ("cifar10", "sgd", None, 1.0, "missing")),
                        "g", ["sgd", "bm", "bn"], "sgd", 3.0)
    c = cells(table)
    assert (c["mnist", "sgd"].value, c["mnist", "sgd"].marks) == (1.0, "*")
    assert (c["mnist", "bm"].status, c["mnist", "bn"].status) == ("missing", "running")
    assert c["cifar10", "sgd"].status == "missing" and c["cifar10", "bm"].status == "missing"
    assert (c["mnist", "sgd"].runs, c["mnist", "bm"].runs, c["mnist", "bn"].runs) == (2, 0, 1)
    assert table.rows == ["mnist", "cifar10"] and table.columns == ["sgd", "bm", "bn"]
    assert (table.runs, table.grid_cells) == (3, 6)


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
    table = build_table(records(uri, grid_cells([("mnist", "sgd", 0, 1)])), "align", [], "sgd",
                        3.0)
    client, run = MlflowClient(uri), cells(table)["mnist", "sgd"].best_run
    for epoch, (first, second) in enumerate([(80, 60), (70, 50), (60, 40)], 1):
        client.log_metric(run, "grad_angle/0", first, step=epoch)
        client.log_metric(run, "grad_angle/1", second, step=epoch)
    assert _curve(client, run, "grad_angle/").to_dict() == {1: 70.0, 2: 60.0, 3: 50.0}
    assert [p.name for p in curves(table, uri, tmp_path)] == ["curves_mnist.png",
                                                               "alignment_mnist.png"]


def test_curves_are_labelled_by_method_and_the_lr_scale_of_the_best_run(tmp_path):
    from bpgrid.report.figures import curve_labels
    uri = f"sqlite:///{tmp_path}/m.db"
    write_store(uri, "lab", [("mnist", "sgd", 0, 10, "FINISHED", "done", 9.0),
                             ("mnist", "sgd", 0, 1, "FINISHED", "done", 4.0),
                             ("mnist", "nusf", 0, 0.1, "FINISHED", "done", 7.0)])
    wanted = [("mnist", "sgd", 0, 10), ("mnist", "sgd", 0, 1), ("mnist", "nusf", 0, 0.1),
              ("mnist", "nusf", 0, 1)]
    table = build_table(records(uri, grid_cells(wanted)), "lab", [], "sgd", 3.0)
    assert curve_labels(table, "mnist") == {"sgd": f"{table.column_labels['sgd']} (LR x1)",
                                            "nusf": f"{table.column_labels['nusf']} (LR x0.1)"}
