import pytest
import torch
from composing import compose_config

from bpgrid.arrays.optim import ArrayAdam, ArrayBatchManhattan, ArraySGD
from bpgrid.config import to_dict
from bpgrid.data import DatasetSplits, Split
from bpgrid.losses import LOSSES
from bpgrid.optim import BatchManhattan
from bpgrid.parts import build_array


def config(*overrides: str) -> dict:
    return to_dict(compose_config(["dataset=digits", "progress=never", "device=cpu",
                                   *overrides]))


@pytest.mark.parametrize("overrides,kind,plain,settings", [
    (["optimizer=sgd"], ArraySGD, torch.optim.SGD, {"momentum": 0.9, "weight_decay": 5e-4}),
    (["optimizer=bm3"], ArrayBatchManhattan, BatchManhattan, {"setting": 3, "momentum": 0.9}),
    (["optimizer=adam"], ArrayAdam, torch.optim.Adam,
     {"betas": (0.9, 0.999), "capturable": False}),
])
def test_the_configured_optimizer_gets_the_trainable_parameters(overrides, kind, plain, settings):
    parts = build_array([config("model.freeze=top", *overrides)])
    assert type(parts.optimizer) is kind
    trainable = [p for p in parts.net.parameters() if p.requires_grad]
    assert 0 < len(trainable) < len(list(parts.net.parameters()))  # top: only the last layer
    assert [id(p) for p in parts.optimizer.params] == [id(p) for p in trainable]
    member = parts.members[0]  # its own plain optimizer, the form of its state
    assert type(member.optimizer) is plain
    group, = member.optimizer.param_groups
    assert {k: group[k] for k in settings} == settings
    assert [id(p) for p in group["params"]] == \
        [id(p) for p in member.model.parameters() if p.requires_grad]


def test_loss_is_the_configured_one_for_classification_and_mse_for_regression():
    assert build_array([config("schedule.loss=hinge")]).loss_fn is LOSSES["hinge"]
    assert build_array([config()]).loss_fn is LOSSES["cross_entropy"]
    regression = build_array([config("dataset=teacher_linear", "schedule.loss=hinge")])
    assert regression.loss_fn is LOSSES["mse"] and not regression.classification


def test_each_members_seed_draws_its_initial_model_as_alone():
    def weights(*seeds):
        parts = build_array([config(f"seed={s}", "method=brsf_bn_bm") for s in seeds])
        return [{k: v[i] for k, v in parts.net.state_dict().items()} for i in range(len(seeds))]
    (a,), (b,), (other,) = weights(1), weights(1), weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], other["conv1.weight"])
    beside = weights(2, 1)  # seed 1 in an array's second slot
    assert all(torch.equal(a[k], beside[1][k]) for k in a)


def test_cells_of_other_structures_cannot_share_an_array():
    with pytest.raises(ValueError, match="cell 1 cannot train in an array with cell 0: they "
                                         "differ in norm.name"):
        build_array([config("method=usf_bn_bm"), config("method=usf_bm")])


def test_given_data_replaces_the_configured_dataset_and_dtype_casts_it():
    x, y = torch.randn(10, 1, 8, 8), torch.randint(0, 4, (10,))
    data = DatasetSplits("mine", Split(x, y), Split(x, y), 4, (1, 8, 8), "classification", {})
    parts = build_array([config(), config("seed=1")], data)
    assert parts.data is data and parts.device == torch.device("cpu")
    assert parts.net(torch.stack([x, x])).shape == (2, 10, 4)
    wide = build_array([config()], data, dtype=torch.float64)
    assert wide.data.train.x.dtype == torch.float64 and wide.data.train.y.dtype == torch.long
    assert next(wide.net.parameters()).dtype == torch.float64
