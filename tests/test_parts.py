import pytest
import torch
from composing import compose_config

from bpgrid.config import to_dict
from bpgrid.data import DatasetSplits, Split
from bpgrid.losses import LOSSES
from bpgrid.optim import BatchManhattan
from bpgrid.parts import build_cell


def config(*overrides: str) -> dict:
    return to_dict(compose_config(["dataset=digits", "progress=never", "device=cpu",
                                   *overrides]))


@pytest.mark.parametrize("overrides,kind,settings", [
    (["optimizer=sgd"], torch.optim.SGD, {"momentum": 0.9, "weight_decay": 5e-4}),
    (["optimizer=bm3"], BatchManhattan, {"setting": 3, "momentum": 0.9}),
    (["optimizer=adam"], torch.optim.Adam, {"betas": (0.9, 0.999), "capturable": False}),
])
def test_the_configured_optimizer_gets_the_trainable_parameters(overrides, kind, settings):
    parts = build_cell(config("model.freeze=top", *overrides))
    assert type(parts.optimizer) is kind
    group, = parts.optimizer.param_groups
    assert {k: group[k] for k in settings} == settings
    trainable = [p for p in parts.model.parameters() if p.requires_grad]
    assert 0 < len(trainable) < len(list(parts.model.parameters()))  # top: only the last layer
    assert [id(p) for p in group["params"]] == [id(p) for p in trainable]


def test_loss_is_the_configured_one_for_classification_and_mse_for_regression():
    assert build_cell(config("schedule.loss=hinge")).loss_fn is LOSSES["hinge"]
    assert build_cell(config()).loss_fn is LOSSES["cross_entropy"]
    regression = build_cell(config("dataset=teacher_linear", "schedule.loss=hinge"))
    assert regression.loss_fn is LOSSES["mse"] and not regression.classification


def test_the_seed_draws_the_initial_model():
    def weights(seed):
        return build_cell(config(f"seed={seed}", "method=brsf_bn_bm")).model.state_dict()
    a, b, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], other["conv1.weight"])


def test_given_data_replaces_the_configured_dataset():
    x, y = torch.randn(10, 1, 8, 8), torch.randint(0, 4, (10,))
    data = DatasetSplits("mine", Split(x, y), Split(x, y), 4, (1, 8, 8), "classification", {})
    parts = build_cell(config(), data)
    assert parts.data is data and parts.device == torch.device("cpu")
    assert parts.model(x).shape == (10, 4)
