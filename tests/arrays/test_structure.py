"""bpgrid/arrays/structure.py: which cells share a structure, and packing cells into arrays."""

from __future__ import annotations

import pytest
from composing import compose_config

from bpgrid.arrays.structure import pack, structure_difference, structure_key
from bpgrid.config import to_dict


def cell(*overrides: str) -> dict:
    return to_dict(compose_config(["dataset=digits", *overrides]))


BASE = ["method=usf_bn_bm"]


@pytest.mark.parametrize("member", [
    ["lr_scale=100"], ["seed=3"], ["feedback=brsf", "feedback.flip_prob=0.5"],
    ["feedback=kp", "feedback.decay=0.1"], ["feedback.layers=1"], ["method=frsf_bn_bm"],
    ["optimizer.momentum=0.5"], ["optimizer.weight_decay=0.0"],
    ["schedule.lr_values=[1e-3]"], ["dataset.root=/elsewhere"],
    ["+tracking.run_name=usf_bn_bm/digits/lr1/s0"], ["+tracking.parent_run_id=0123abcd"],
])
def test_cells_that_differ_in_numbers_share_a_structure(member):
    assert structure_key(cell(*BASE)) == structure_key(cell(*BASE, *member))
    assert structure_difference(cell(*BASE), cell(*BASE, *member)) is None


@pytest.mark.parametrize("other,entry", [
    (["norm=bn_affine"], "norm.name"), (["optimizer=sgd"], "optimizer.name"),
    (["optimizer=bm2"], "optimizer.setting"), (["dataset=mnist1d"], "dataset.name"),
    (["model.hidden=[32]"], "model.hidden"), (["schedule.epochs=3"], "schedule.epochs"),
    (["schedule.lr_epochs=[1,5]", "schedule.lr_values=[1,2]"], "schedule.lr_epochs"),
    (["schedule.loss=hinge"], "schedule.loss"), (["alignment=true"], "alignment"),
    (["device=cpu"], "device"), (["model.dropout=0.5"], "model.dropout"),
])
def test_cells_that_differ_in_anything_else_do_not(other, entry):
    assert structure_key(cell(*BASE)) != structure_key(cell(*BASE, *other))
    assert structure_difference(cell(*BASE), cell(*BASE, *other)) == entry


def test_the_start_epoch_is_part_of_the_key():
    assert structure_key(cell(*BASE), 1) != structure_key(cell(*BASE), 4)


def test_an_unknown_entry_counts_as_structure():
    a, b = cell(*BASE), cell(*BASE)
    b["new_factor"] = 1
    assert structure_key(a) != structure_key(b)


def test_pack_groups_by_structure_into_balanced_arrays_with_rules_side_by_side():
    usf = [cell("method=usf_bn_bm", f"lr_scale={s}") for s in (100, 10, 1, 0.1, 0.01)]
    brsf = [cell("method=brsf_bn_bm", f"lr_scale={s}") for s in (100, 10, 1, 0.1, 0.01)]
    sgd = [cell("method=sgd", f"lr_scale={s}") for s in (100, 10, 1)]
    cells = [*usf[:2], *brsf, *sgd, *usf[2:]]  # interleaved
    arrays = pack(cells, max_array=4)
    assert sorted(i for array in arrays for i in array) == list(range(len(cells)))
    assert [len(a) for a in arrays] == [4, 3, 3, 3]  # 10 bn+bm cells in 3 arrays, 3 sgd cells
    for array in arrays:
        assert len({structure_key(cells[i]) for i in array}) == 1
        rules = [cells[i]["feedback"]["name"] for i in array]
        assert rules == sorted(rules, key=lambda r: rules.index(r))  # each rule's members adjacent
    assert pack(cells, max_array=16) == [[2, 3, 4, 5, 6, 0, 1, 10, 11, 12], [7, 8, 9]]


def test_pack_keeps_cells_resuming_at_other_epochs_apart():
    cells = [cell(*BASE, f"seed={s}") for s in range(4)]
    assert pack(cells, 8, start_epochs=[1, 5, 1, 5]) == [[0, 2], [1, 3]]
    with pytest.raises(ValueError, match="max_array must be at least 1"):
        pack(cells, 0)


def test_pack_puts_the_arrays_of_one_dataset_next_to_each_other():
    cells = [to_dict(compose_config([f"dataset={d}", f"method={m}"]))
             for m in ("sgd", "usf_bn_bm", "bm") for d in ("mnist1d", "digits")]
    arrays = pack(cells, max_array=4)
    datasets = [cells[array[0]]["dataset"]["name"] for array in arrays]
    assert len(arrays) == 6 and datasets in (["digits"] * 3 + ["mnist1d"] * 3,
                                             ["mnist1d"] * 3 + ["digits"] * 3)
    assert [cells[a[0]]["method"]["name"] for a in arrays[:3]] == ["sgd", "usf_bn_bm", "bm"]
