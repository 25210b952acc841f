"""conf/grid/paper_mnist.yaml: Liao et al. Tables 2-4's MNIST rows, each distinct cell once."""

from collections import Counter

import pytest
from composing import CONF, compose_config
from omegaconf import OmegaConf
from test_sweep import grid_jobs

from bpgrid.config import cell_id

TABLE_GRIDS = ["experiment_a", "experiment_a_usf_bm_b500", "experiment_b", "experiment_c1",
               "experiment_c2"]  # Table 2 (both uSF+BM procedures), Table 3, Table 4 C1 and C2


def cells(grid: str) -> list[tuple[str, str]]:
    """(cell id, method name) of every MNIST cell of a grid; composed once per LR-scale group."""
    composed: dict[tuple[str, ...], object] = {}
    out = []
    for job in grid_jobs(grid, "dataset=mnist"):
        scale = next(o for o in job if o.startswith("lr_scale="))
        rest = tuple(o for o in job if o != scale)
        if rest not in composed:
            composed[rest] = compose_config([f"+grid={grid}", *rest])
        cfg = composed[rest].copy()
        cfg.lr_scale = float(scale.split("=")[1])
        out.append((cell_id(cfg), cfg.method.name))
    return out


@pytest.mark.slow
def test_cells_are_the_union_of_tables_2_to_4_mnist_cells_each_once():
    ours = cells("paper_mnist")
    counts = Counter(cid for cid, _ in ours)
    assert max(counts.values()) == 1, "a cell listed twice"
    per_table = [cid for grid in TABLE_GRIDS for cid, _ in cells(grid)]
    assert set(counts) == set(per_table)
    # shared between tables: SGD, NuSF, BN, uSF+BN+BM (2, 4 C1); brSF/frSF same sign (2, 3)
    assert len(per_table) - len(counts) == 6 * 5


def test_every_method_reports_in_one_of_the_grids_columns():
    grid_file = OmegaConf.load(CONF / "grid" / "paper_mnist.yaml")
    methods = grid_file.hydra.sweeper.params.method.split(",")
    reported = {m: compose_config([f"method={m}"]).method.name for m in methods}
    assert set(reported.values()) == set(grid_file.grid.columns)
    assert [m for m, name in reported.items() if m != name] == ["usf_bm_b500"]
    assert reported["usf_bm_b500"] == "usf_bm"  # Table 2 gives the better of the two procedures
