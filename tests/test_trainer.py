"""bpgrid/trainer.py's GPU fast path: training steps replayed as CUDA graphs train the cell exactly
as eager steps do (the other trainer behaviour is tested through run_cell in test_cell.py)."""

import copy

import pytest
import torch
from composing import CONF, compose_config
from omegaconf import OmegaConf

from bpgrid.config import ConfigError, to_dict, validate
from bpgrid.data import DatasetSplits, Split
from bpgrid.models import model_input_shape
from bpgrid.trainer import WARMUP_STEPS, Trainer

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


def config(*overrides: str) -> dict:
    return to_dict(compose_config(["dataset=digits", "progress=never", *overrides]))


def test_cuda_graphs_setting_is_validated():
    with pytest.raises(ConfigError, match="cuda_graphs"):
        validate(config("cuda_graphs=maybe"))


def test_cpu_and_alignment_runs_use_eager_steps():
    cpu = Trainer(config("device=cpu"))
    assert not cpu.graphed
    assert not cpu.model.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    if torch.cuda.is_available():
        gpu = Trainer(config("device=cuda"))
        assert gpu.graphed
        assert gpu.model.conv2.weight.is_contiguous(memory_format=torch.channels_last)
        assert not Trainer(config("device=cuda", "alignment=true")).graphed
        assert not Trainer(config("device=cuda", "cuda_graphs=false")).graphed


def test_adam_checkpoint_from_a_gpu_resumes_on_the_cpu():
    """A GPU run's Adam is capturable, its step count on the device; the CPU run's is neither."""
    overrides = ["device=cpu", "schedule=report", "optimizer=adam"]
    first = Trainer(config(*overrides))
    first.train_epoch(1)
    state = copy.deepcopy(first.state())  # as read back from a checkpoint: no shared tensors
    for group in state["optimizer"]["param_groups"]:  # as saved from a GPU run
        group["capturable"] = True
    resumed = Trainer(config(*overrides))
    resumed.load_state(state)
    resumed.train_epoch(2)  # a capturable Adam would refuse CPU step counts here
    first.train_epoch(2)
    for key, value in first.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert not any(g["capturable"] for g in resumed.optimizer.param_groups)


@pytest.fixture
def deterministic_cudnn(monkeypatch):
    """cuDNN's default algorithms may add in any order: two eager runs then differ by ~1e-8."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)


def train(graphs: bool, *overrides: str) -> tuple[Trainer, list[dict]]:
    trainer = Trainer(config("device=cuda", f"cuda_graphs={str(graphs).lower()}", *overrides))
    return trainer, [trainer.train_epoch(epoch) for epoch in (1, 2, 3)]


# digits: 1347 training samples, so 13 full batches of 100 and a short one of 47 per epoch; the LR
# changes at epoch 3, so the step is captured again there
LR_CHANGE = ["schedule.lr_epochs=[1,3]", "schedule.lr_values=[5e-4,5e-5]", "lr_scale=10"]


@needs_gpu
@pytest.mark.parametrize("overrides", [
    ["method=sgd"],
    ["method=usf_bn_bm"],
    ["method=usf_bn_bm3", "optimizer.weight_decay=0.001"],
    ["method=nusf"],
    ["method=kp", "feedback.decay=0.01"],
    ["method=rndf_bn"],
    ["method=frsf_bn_bm", "feedback.flip_prob=0.2"],
    ["method=brsf_bn_bm", "feedback.flip_prob=0.2"],
    ["schedule=report", "optimizer=adam", "schedule.loss=hinge", "schedule.weight_clip=0.5",
     "schedule.grad_clip=1.0", "model.dropout=0.3", "norm=bn_affine"],
], ids=lambda o: " ".join(o))
def test_graphed_steps_train_exactly_as_eager_steps(overrides, deterministic_cudnn):
    graphed, got = train(True, *LR_CHANGE, *overrides)
    eager, want = train(False, *LR_CHANGE, *overrides)
    assert graphed.graphed and not eager.graphed and eager.captured is None
    size = graphed.c["schedule"]["batch_sizes"][0]
    assert graphed.eager_steps == WARMUP_STEPS  # every later full batch was a replay
    assert graphed.captured.key == (size, (want[2]["lr"],))  # captured again for the new LR
    for epoch, (a, b) in enumerate(zip(got, want, strict=True), start=1):
        for key in ("train_loss", "train_error", "val_error"):
            assert a[key] == b[key], (epoch, key)
    mine, theirs = graphed.state(), eager.state()
    for key, value in theirs["model"].items():
        assert torch.equal(mine["model"][key], value), key
    for key, value in theirs["optimizer"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(torch.as_tensor(mine["optimizer"]["state"][key][name]),
                               torch.as_tensor(tensor)), (key, name)


MODEL_CONFIGS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


@needs_gpu
@pytest.mark.parametrize("method", ["usf_bn_bm", "kp"])
@pytest.mark.parametrize("model", MODEL_CONFIGS)
def test_every_model_trains_the_same_through_graphs(model, method, deterministic_cudnn):
    """450 samples: epoch 1 has 3 eager warm-up steps, then a replay, then a short last batch."""
    shape = model_input_shape(OmegaConf.load(CONF / "model" / f"{model}.yaml").name) or (3, 32, 32)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(450, *shape, generator=g), torch.randint(0, 10, (450,), generator=g)
    data = DatasetSplits("synthetic", Split(x.cuda(), y.cuda()), Split(x[:100].cuda(),
                         y[:100].cuda()), 10, shape, "classification", {})
    runs = []
    for graphs in ("true", "false"):
        trainer = Trainer(config("device=cuda", f"model={model}", f"method={method}",
                                 f"cuda_graphs={graphs}"), data)
        runs.append(([trainer.train_epoch(epoch) for epoch in (1, 2)], trainer.model))
    (got, graphed), (want, eager) = runs
    for a, b in zip(got, want, strict=True):
        assert (a["train_loss"], a["val_error"]) == (b["train_loss"], b["val_error"])
    for (name, p), q in zip(graphed.state_dict().items(), eager.state_dict().values(),
                            strict=True):
        assert torch.equal(p, q), name
