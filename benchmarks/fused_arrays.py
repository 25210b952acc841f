"""K cells trained as one fused array against the same K cells one after another, side by side.

    python benchmarks/fused_arrays.py                                  # CPU: the quick grid's nets
    python benchmarks/fused_arrays.py --nets cifar --device cuda --sizes 1 4 11 16 55

The cells are the quick grid's largest structure: uSF, brSF and frSF with BN+BM at its five LR
scales, 15 cells that differ only in numbers (further seeds past 15). (The quick grid's 110 cells
are 12 structures: 6 per dataset, of 15, 10, 5, 5, 5 and 15 cells.)
For each K, the first K of them train as one array (fused) and as K arrays of one, one after
another (unfused: what bpgrid did before arrays, one cell at a time). Both are timed over whole
epochs (training steps, BN statistics, test error), after a warm-up epoch, alternating fused and
unfused epochs so that the noise of a shared machine hits both alike; the medians are printed with
their ratio. Nets: ``mnist1d`` (the MLP on MNIST-1D) and ``digits`` (the small CNN on digits), on
their real embedded data; ``cifar`` (Liao et al.'s CIFAR net) on CIFAR-shaped synthetic data.
On a GPU the steps replay CUDA graphs. ``--flops`` prints the arithmetic rate of the fused array's
training steps (one cell's step counted by PyTorch's FLOP counter, times K), ``--peak-tflops``
that rate as a fraction of the device's peak.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from bpgrid.data import DatasetSplits, Split
from bpgrid.trainer import Trainer

CONF = Path(__file__).resolve().parent.parent / "conf"
METHODS = ("usf_bn_bm", "brsf_bn_bm", "frsf_bn_bm")
SCALES = (100, 10, 1, 0.1, 0.01)
NETS = {"mnist1d": ["dataset=mnist1d"], "digits": ["dataset=digits"],
        "cifar": ["dataset=cifar10"]}


def cells(net: str, k: int, device: str) -> list[dict]:
    """The first k cells of the quick grid's uSF/brSF/frSF+BN+BM structure (further seeds past
    15)."""
    out = []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for i in range(k):
            method, scale = METHODS[i // len(SCALES) % len(METHODS)], SCALES[i % len(SCALES)]
            cfg = compose("config", [*NETS[net], f"device={device}", f"method={method}",
                                     f"lr_scale={scale}", f"seed={i // 15}", "progress=never"])
            out.append(OmegaConf.to_container(cfg, resolve=True))
    return out


def synthetic_cifar(n: int, device: str) -> DatasetSplits:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    test = max(n // 5, 100)
    return DatasetSplits("synthetic", Split(x.to(device), y.to(device)),
                         Split(x[:test].to(device), y[:test].to(device)), 10, (3, 32, 32),
                         "classification", {})


def epoch_seconds(trainers: list[Trainer], epoch: int) -> float:
    start = time.perf_counter()
    for trainer in trainers:
        trainer.train_epoch(epoch)
    if trainers[0].parts.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def step_flops(trainer: Trainer) -> int:
    """FLOPs of one training step (forward and backward) of an array of one, at the first
    epoch's batch size; the cell is left as it was."""
    parts, size = trainer.parts, trainer.sched["batch_sizes"][0]
    idx = torch.arange(size, device=parts.device).expand(1, size)
    state = trainer.state(0)
    with FlopCounterMode(display=False) as counter:
        trainer.step(parts.data.train.x[idx], parts.data.train.y[idx])
    trainer.load_state(0, state)
    return counter.get_total_flops()


def compare(net: str, k: int, args, data) -> None:
    configs = cells(net, k, args.device)
    fused = [Trainer(configs, data)]
    unfused = [Trainer([c], data) for c in configs]
    for trainers in (fused, unfused):
        epoch_seconds(trainers, 1)  # warm-up: data, allocator, graph capture
    times = {"fused": [], "unfused": []}
    for epoch in range(2, args.epochs + 2):
        times["fused"].append(epoch_seconds(fused, epoch))
        times["unfused"].append(epoch_seconds(unfused, epoch))
    a, b = (statistics.median(times[key]) for key in ("fused", "unfused"))
    line = (f"{net:8s} K={k:3d}  fused {a:8.3f} s  unfused {b:8.3f} s  per epoch of the K cells"
            f"   unfused/fused {b / a:6.2f}x   fused {a / k * 1000:7.1f} ms a cell-epoch")
    if args.flops:  # the members' steps (a member's FLOPs are its cell's), not BN or tests
        trainer = unfused[0]
        steps = -(-len(trainer.parts.data.train) // trainer.sched["batch_sizes"][0])
        rate = k * step_flops(trainer) * steps / a / 1e12
        line += f"   {rate:7.3f} TFLOP/s"
        if args.peak_tflops:
            line += f" ({100 * rate / args.peak_tflops:.1f}% of {args.peak_tflops:g})"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nets", nargs="+", default=["mnist1d", "digits"], choices=NETS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 11, 16])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after a warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train", type=int, default=None,
                        help="synthetic CIFAR images (default 50000 on a GPU, 2000 on a CPU)")
    parser.add_argument("--flops", action="store_true", help="count FLOPs, print TFLOP/s")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"device {args.device} ({name}), torch {torch.__version__}, threads {args.threads}, "
          f"{args.epochs} timed epochs, cells: {', '.join(METHODS)} x LR scales "
          f"{', '.join(map(str, SCALES))}")
    for net in args.nets:
        data = None
        if net == "cifar":
            n = args.train or (50000 if args.device.startswith("cuda") else 2000)
            data = synthetic_cifar(n, args.device)
        for k in args.sizes:
            compare(net, k, args, data)


if __name__ == "__main__":
    main()
