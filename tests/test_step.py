"""bpgrid/step.py: the eager step of an array against hand computations per member; on a GPU,
training steps replayed as CUDA graphs train the cells exactly as eager steps do."""

import pytest
import torch
from composing import CONF, compose_config
from omegaconf import OmegaConf
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from bpgrid.arrays.net import ArrayNet
from bpgrid.arrays.optim import ArraySGD
from bpgrid.config import to_dict
from bpgrid.data import DatasetSplits, Split
from bpgrid.models import FC, FeedbackNet, model_input_shape
from bpgrid.parts import ArrayParts, Member
from bpgrid.step import WARMUP_STEPS, Step, graphable
from bpgrid.trainer import Trainer

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


def nets_of(layers, members: int = 2, frozen: tuple[str, ...] = ()) -> list[FeedbackNet]:
    """Plain nets of 4 inputs, member k drawn with seed k; ``frozen`` parameters untrainable."""
    nets = []
    for seed in range(members):
        torch.manual_seed(seed)
        net = FeedbackNet(layers, (4,))
        for name in frozen:
            net.get_parameter(name).requires_grad_(False)
        nets.append(net)
    return nets


def parts_of(nets, lrs, train=None, device: str = "cpu") -> ArrayParts:
    """An array of ``nets`` trained by SGD without momentum at the members' ``lrs``."""
    train = train if train is not None else Split(torch.zeros(1, 4), torch.zeros(1))
    data = DatasetSplits("hand", train, train, 3, (4,), "classification", {})
    generators = [torch.Generator() for _ in nets]
    net = ArrayNet(nets, generators)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = ArraySGD(params, [{"momentum": 0.0, "weight_decay": 0.0}] * len(nets))
    optimizer.set_lr(lrs)
    members = [Member({}, plain, torch.optim.SGD(plain.parameters(), lr=1.0), g)
               for plain, g in zip(nets, generators, strict=True)]
    return ArrayParts(data, net, optimizer, F.cross_entropy, torch.device(device), members)


def test_step_adds_each_members_batch_loss_times_its_size_and_its_errors_to_its_sums():
    nets = nets_of((FC(3),))
    step = Step(parts_of(nets, lrs=[0.0, 0.0]), None, None)  # lr 0: the weights stay as they are
    torch.manual_seed(0)
    batches = [(torch.randn(2, 5, 4), torch.randint(0, 3, (2, 5))),
               (torch.randn(2, 3, 4), torch.randint(0, 3, (2, 3)))]
    for x, y in batches:
        step(x, y)
    with torch.no_grad():
        for k, net in enumerate(nets):
            loss = sum(F.cross_entropy(net(x[k]), y[k]) * y.shape[1] for x, y in batches)
            wrong = sum(int((net(x[k]).argmax(1) != y[k]).sum()) for x, y in batches)
            assert step.loss_sum[k].item() == pytest.approx(loss.item(), rel=1e-6)
            assert step.wrong[k].item() == wrong


def test_gradient_clipping_scales_each_members_update_to_the_clip_norm():
    nets = nets_of((FC(3),))
    before = nets_of((FC(3),))  # the same draws
    parts = parts_of(nets, lrs=[1.0, 1.0])
    torch.manual_seed(0)
    x, y = torch.randn(2, 8, 4), torch.randint(0, 3, (2, 8))
    x[0] *= 100  # member 0's gradient is far above the clip norm, member 1's below it
    x[1] *= 1e-3
    Step(parts, grad_clip=0.5, weight_clip=None)(x, y)
    for k, net in enumerate(before):
        F.cross_entropy(net(x[k]), y[k]).backward()
        grads = [p.grad for p in net.parameters()]
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        scale = min(1.0, 0.5 / (norm.item() + 1e-6))
        assert (scale < 1) == (k == 0)  # the clipping acted on member 0 only
        for (name, p), g in zip(net.named_parameters(), grads, strict=True):
            torch.testing.assert_close(parts.net.get_parameter(name)[k], p - scale * g)


def test_weight_clipping_clamps_trainable_weights_not_biases_or_frozen_weights():
    nets = nets_of((FC(3), FC(3)), frozen=("fc2.weight",))
    parts = parts_of(nets, lrs=[0.0, 0.0])
    with torch.no_grad():
        for p in parts.net.parameters():
            p.copy_(torch.linspace(-2, 2, p.numel()).view_as(p))
    want = {name: p.detach().clone() for name, p in parts.net.named_parameters()}
    want["fc1.weight"] = want["fc1.weight"].clamp(-0.5, 0.5)
    Step(parts, None, weight_clip=0.5)(torch.randn(2, 2, 4), torch.tensor([[0, 1], [1, 2]]))
    for name, p in parts.net.named_parameters():
        assert torch.equal(p, want[name]), name


def test_graphs_need_the_gpu_and_the_training_split_on_it_as_tensors():
    split = Split(torch.zeros(2, 4), torch.zeros(2))
    streamed = TensorDataset(split.x, split.y)
    assert graphable(parts_of(nets_of((FC(3),)), [0.0, 0.0], split, device="cuda"))
    assert not graphable(parts_of(nets_of((FC(3),)), [0.0, 0.0], streamed, device="cuda"))
    assert not graphable(parts_of(nets_of((FC(3),)), [0.0, 0.0], split, device="cpu"))


def config(*overrides: str) -> dict:
    return to_dict(compose_config(["dataset=digits", "progress=never", *overrides]))


@pytest.fixture
def deterministic_cudnn(monkeypatch):
    """cuDNN's default algorithms may add in any order: two eager runs then differ by ~1e-8."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)


def train(graphs: bool, *overrides: str) -> tuple[Trainer, list[dict]]:
    trainer = Trainer([config("device=cuda", f"cuda_graphs={str(graphs).lower()}", *overrides)])
    return trainer, [trainer.train_epoch(epoch)[0] for epoch in (1, 2, 3)]


# digits: 1347 training samples, so 13 full batches of 100 and a short one of 47 per epoch; the LR
# changes at epoch 3, which the graph reads from a device tensor: no second capture
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
    assert replayed.graphed.captured.size == size and replayed.graphed.captures == 1
    assert want[2]["lr"] != want[0]["lr"]  # the replays took the new LR from the device
    for epoch, (a, b) in enumerate(zip(got, want, strict=True), start=1):
        for key in ("train_loss", "train_error", "val_error"):
            assert a[key] == b[key], (epoch, key)
    mine, theirs = replayed.state(0), eager.state(0)
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
        trainer = Trainer([config("device=cuda", f"model={model}", f"method={method}",
                                  f"cuda_graphs={graphs}")], data)
        runs.append(([trainer.train_epoch(epoch)[0] for epoch in (1, 2)], trainer.net))
    (got, graphed), (want, eager) = runs
    for a, b in zip(got, want, strict=True):
        assert (a["train_loss"], a["val_error"]) == (b["train_loss"], b["val_error"])
    for (name, p), q in zip(graphed.state_dict().items(), eager.state_dict().values(),
                            strict=True):
        assert torch.equal(p, q), name


@needs_gpu
def test_an_array_of_cells_with_every_layer_rule_trains_the_same_through_graphs(
        deterministic_cudnn):
    """One array: brsf, wm and dropout draw from each member's generator, registered with the
    graph; the members differ in rule, LR scale, seed and momentum."""
    cells = [["feedback=brsf", "feedback.flip_prob=0.2", "lr_scale=10"],
             ["feedback=wm", "seed=1"], ["feedback=kp", "feedback.decay=0.01", "lr_scale=0.1"],
             ["feedback=usf", "optimizer.momentum=0.5"], ["feedback=dfa", "seed=2"],
             ["feedback=frsf", "feedback.flip_prob=0.5"]]
    runs = []
    for graphs in ("true", "false"):
        trainer = Trainer([config("device=cuda", "method=usf_bn_bm", "model.dropout=0.3",
                                  f"cuda_graphs={graphs}", *LR_CHANGE[:2], *cell)
                           for cell in cells])
        runs.append((trainer, [trainer.train_epoch(epoch) for epoch in (1, 2, 3)]))
    (replayed, got), (eager, want) = runs
    assert replayed.graphed.captures == 1 and eager.graphed is None
    for k in range(len(cells)):
        for a, b in zip(got, want, strict=True):
            assert (a[k]["train_loss"], a[k]["val_error"]) == (b[k]["train_loss"],
                                                              b[k]["val_error"]), k
        mine, theirs = replayed.state(k), eager.state(k)
        for key, value in theirs["model"].items():
            assert torch.equal(mine["model"][key], value), (k, key)
        assert torch.equal(mine["cuda_rng"], theirs["cuda_rng"]), k  # each generator advanced
