"""bpgrid/step.py: the eager step against hand computations; on a GPU, training steps replayed as
CUDA graphs train the cell exactly as eager steps do."""

import copy

import pytest
import torch
from composing import CONF, compose_config
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from bpgrid.config import to_dict
from bpgrid.data import DatasetSplits, Split
from bpgrid.models import model_input_shape
from bpgrid.parts import CellParts
from bpgrid.step import WARMUP_STEPS, Step, graphable
from bpgrid.trainer import Trainer

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


def parts_of(model: nn.Module, lr: float, train=None, device: str = "cpu") -> CellParts:
    train = train if train is not None else Split(torch.zeros(1, 4), torch.zeros(1))
    data = DatasetSplits("hand", train, train, 3, (4,), "classification", {})
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    return CellParts(data, model, optimizer, F.cross_entropy, torch.device(device))


def test_step_adds_each_batch_loss_times_its_size_and_its_errors_to_the_sums():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    step = Step(parts_of(model, lr=0.0), None, None)  # lr 0: the weights stay as they are
    batches = [(torch.randn(5, 4), torch.randint(0, 3, (5,))),
               (torch.randn(3, 4), torch.randint(0, 3, (3,)))]
    for x, y in batches:
        step(x, y)
    with torch.no_grad():
        loss = sum(F.cross_entropy(model(x), y) * len(y) for x, y in batches)
        wrong = sum(int((model(x).argmax(1) != y).sum()) for x, y in batches)
    assert step.loss_sum.item() == pytest.approx(loss.item(), rel=1e-6)
    assert step.wrong.item() == wrong


def test_gradient_clipping_scales_the_update_to_the_clip_norm():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    before = copy.deepcopy(model)
    x, y = torch.randn(8, 4) * 100, torch.randint(0, 3, (8,))
    Step(parts_of(model, lr=1.0), grad_clip=1e-3, weight_clip=None)(x, y)
    F.cross_entropy(before(x), y).backward()
    grads = [p.grad for p in before.parameters()]
    scale = 1e-3 / torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    assert scale < 1  # the clipping did act
    for p, q, g in zip(model.parameters(), before.parameters(), grads, strict=True):
        torch.testing.assert_close(p, q - scale * g)  # SGD at lr 1: w - clipped g


def test_weight_clipping_clamps_trainable_weights_not_biases_or_frozen_weights():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.linspace(-2, 2, p.numel()).view_as(p))
    model[1].weight.requires_grad_(False)
    want = {name: p.detach().clone() for name, p in model.named_parameters()}
    want["0.weight"] = want["0.weight"].clamp(-0.5, 0.5)
    Step(parts_of(model, lr=0.0), None, weight_clip=0.5)(torch.randn(2, 4), torch.tensor([0, 1]))
    for name, p in model.named_parameters():
        assert torch.equal(p, want[name]), name


def test_graphs_need_the_gpu_and_the_training_split_on_it_as_tensors():
    split = Split(torch.zeros(2, 4), torch.zeros(2))
    streamed = TensorDataset(split.x, split.y)
    assert graphable(parts_of(nn.Linear(4, 3), 0.0, split, device="cuda"))
    assert not graphable(parts_of(nn.Linear(4, 3), 0.0, streamed, device="cuda"))
    assert not graphable(parts_of(nn.Linear(4, 3), 0.0, split, device="cpu"))


def config(*overrides: str) -> dict:
    return to_dict(compose_config(["dataset=digits", "progress=never", *overrides]))


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
    replayed, got = train(True, *LR_CHANGE, *overrides)
    eager, want = train(False, *LR_CHANGE, *overrides)
    assert replayed.graphed is not None and eager.graphed is None
    size = replayed.c["schedule"]["batch_sizes"][0]
    assert replayed.graphed.eager_steps == WARMUP_STEPS  # every later full batch was a replay
    assert replayed.graphed.captured.key == (size, (want[2]["lr"],))  # captured again, new LR
    for epoch, (a, b) in enumerate(zip(got, want, strict=True), start=1):
        for key in ("train_loss", "train_error", "val_error"):
            assert a[key] == b[key], (epoch, key)
    mine, theirs = replayed.state(), eager.state()
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
