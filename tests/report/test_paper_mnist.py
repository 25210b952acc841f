"""paper.csv's paper_mnist rows: Tables 2-4's MNIST numbers under the grid's column names."""

from pathlib import Path

from omegaconf import OmegaConf

from bpgrid.report.conclusions import TABLES
from bpgrid.report.paper import paper_numbers

CONF = Path(__file__).resolve().parents[2] / "conf"
FLIPS = {100: "1.0", 75: "0.75", 50: "0.5", 25: "0.25"}


def sources(column: str) -> list[tuple[str, str]]:
    """The (grid, column) rows of Tables 2-4 that a paper_mnist column repeats."""
    if "_flip" in column:
        rule, percent = column.split("_flip")
        return [("experiment_b", f"{rule}/{FLIPS[int(percent)]}")]
    if column.endswith(("_bottom", "_top")):
        method, part = column.rsplit("_", 1)
        return [("experiment_c2", f"{method}/{part}")]
    found = [(grid, column) for grid in ("experiment_a", "experiment_c1")
             if (("mnist", column) in paper_numbers(grid))]
    if column in ("brsf_bn_bm", "frsf_bn_bm"):  # Table 3's same-sign columns
        found.append(("experiment_b", f"{column}/0.0"))
    return found


def test_paper_mnist_numbers_equal_the_tables_they_come_from():
    ours = paper_numbers("paper_mnist")
    assert {d for d, _ in ours.index} == {"mnist"}
    for (_, column), value in ours.items():
        rows = sources(column)
        assert rows, column
        assert {paper_numbers(grid)["mnist", c] for grid, c in rows} == {value}, column
    assert len(ours) == 31
    assert ours["mnist", "usf"] == 88.65 and ours["mnist", "brsf_bn_bm_flip50"] == 7.54
    assert ours["mnist", "rndf_bn_bm_bottom"] == 86.74


def test_every_table_column_is_a_grid_column_with_a_published_number():
    columns = set(OmegaConf.load(CONF / "grid" / "paper_mnist.yaml").grid.columns)
    in_tables = {c for table in TABLES.values() for c, _ in table}
    assert in_tables == columns == {c for _, c in paper_numbers("paper_mnist").index}
