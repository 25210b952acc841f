"""Liao et al.'s CIFAR net at batch 100 on CIFAR-shaped synthetic data: bpgrid's trainer against a
plain PyTorch DataLoader loop, and cells per hour with several cells sharing one device.

    python benchmarks/gpu_throughput.py                      # on a GPU: 50000 images, 2 epochs
    python benchmarks/gpu_throughput.py --train 2000 --epochs 1 --concurrency 1 2   # a CPU check

bpgrid's path: the dataset lives on the device as tensors, batches are index gathers, losses and
error counts accumulate on the device and are read once per epoch. The plain loop: a CPU
TensorDataset through a shuffling DataLoader, each batch copied to the device, ``loss.item()``
every step (the usual tutorial loop), same net (plain nn layers), same optimizer.
Concurrency: N processes each train one cell on the same device; cells/hour counts full
65-epoch cells. Targets on one H100: an epoch < 1.5 s; Table 2's CIFAR-10 column
(11 methods x 5 LR scales = 55 cells x 65 epochs) in < 20 minutes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bpgrid.data import DatasetSplits, Split
from bpgrid.trainer import Trainer

CONF = Path(__file__).resolve().parent.parent / "conf"
PAPER_EPOCHS, TABLE2_CELLS = 65, 55


def cell_config(device: str, overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", ["dataset=cifar10", f"device={device}", "lr_scale=10",
                                 *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def synthetic(n: int, device: str, seed: int = 0) -> DatasetSplits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    test = max(n // 5, 100)
    return DatasetSplits("synthetic", Split(x.to(device), y.to(device)),
                         Split(x[:test].to(device), y[:test].to(device)), 10, (3, 32, 32),
                         "classification", {})


def ours_epoch_seconds(overrides: list[str], device: str, n: int, epochs: int) -> float:
    """Seconds per epoch of bpgrid's trainer: training, then evaluation of the test split."""
    trainer = Trainer(cell_config(device, overrides), synthetic(n, device))
    trainer.train_epoch(1)  # warm-up: allocator, kernels
    start = time.perf_counter()
    for epoch in range(2, epochs + 2):
        trainer.train_epoch(epoch)
    return (time.perf_counter() - start) / epochs


def plain_net() -> nn.Module:
    def pool(kind):
        layer = nn.MaxPool2d(3, 2) if kind == "max" else nn.AvgPool2d(3, 2)
        return nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), layer)
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.BatchNorm2d(32, affine=False), nn.ReLU(), pool("max"),
        nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64, affine=False), nn.ReLU(), pool("avg"),
        nn.Conv2d(64, 64, 5, padding=2), nn.BatchNorm2d(64, affine=False), nn.ReLU(), pool("avg"),
        nn.Flatten(), nn.Linear(1024, 128), nn.BatchNorm1d(128, affine=False), nn.ReLU(),
        nn.Linear(128, 10))


def plain_epoch_seconds(device: str, n: int, epochs: int) -> float:
    """The same work (SGD, BN without affine, training then test evaluation) the usual way."""
    data = synthetic(n, "cpu")
    loader = DataLoader(TensorDataset(data.train.x, data.train.y), batch_size=100, shuffle=True)
    test = DataLoader(TensorDataset(data.test.x, data.test.y), batch_size=1000)
    net = plain_net().to(device)
    opt = torch.optim.SGD(net.parameters(), lr=5e-3, momentum=0.9, weight_decay=5e-4)

    def epoch():
        total = 0.0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        net.eval()
        with torch.no_grad():
            wrong = sum((net(x.to(device)).argmax(1) != y.to(device)).sum().item()
                        for x, y in test)
        net.train()
        return total, wrong

    epoch()
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return (time.perf_counter() - start) / epochs


def _worker(args) -> float:
    method, device, n, epochs, threads = args
    torch.set_num_threads(threads)
    return ours_epoch_seconds([f"method={method}"], device, n, epochs)


def concurrent_cells_per_hour(k: int, method: str, device: str, n: int, epochs: int,
                              full: int) -> float:
    """k processes train one cell each on the device; full-size 65-epoch cells per hour."""
    threads = max(1, torch.get_num_threads() // k) if device == "cpu" else 1
    ctx = mp.get_context("spawn")
    start = time.perf_counter()
    with ctx.Pool(k) as pool:
        pool.map(_worker, [(method, device, n, epochs, threads)] * k)
    wall = time.perf_counter() - start
    # each process ran epochs+1 epochs of n images; scale to 65 epochs of the full dataset
    seconds_per_cell = wall / k * (PAPER_EPOCHS * full) / ((epochs + 1) * n)
    return 3600 / seconds_per_cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train", type=int, default=50000, help="synthetic training images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--method", default="usf_bn_bm")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    scaled = "" if args.train == 50000 else f" (scaled from {args.train} images to 50000)"
    print(f"device {args.device} ({name}), torch {torch.__version__}, CIFAR net, batch 100, "
          f"method {args.method}, {args.train} images, {args.epochs} timed epochs")
    same = ["method=sgd", "norm=bn", "schedule.bn_ema_batches=0"]
    ours = ours_epoch_seconds(same, args.device, args.train, args.epochs)
    plain = plain_epoch_seconds(args.device, args.train, args.epochs)
    protocol = ours_epoch_seconds([f"method={args.method}"], args.device, args.train,
                                  args.epochs)
    per_50k = 50000 / args.train
    print(f"epoch, SGD+BN, same work: bpgrid {ours * per_50k:7.2f} s   plain DataLoader loop "
          f"{plain * per_50k:7.2f} s   plain/bpgrid {plain / ours:4.2f}x{scaled}")
    print(f"epoch, {args.method} with the full Liao protocol (BN EMA over 20 batches): "
          f"{protocol * per_50k:7.2f} s (target on an H100: < 1.5 s){scaled}")
    best = 0.0
    for k in args.concurrency:
        rate = concurrent_cells_per_hour(k, args.method, args.device, args.train, args.epochs,
                                         50000)
        best = max(best, rate)
        print(f"  {k} concurrent cells: {rate:7.2f} full 65-epoch cells per hour per device")
    print(f"Table 2's CIFAR-10 column (55 cells x 65 epochs): {TABLE2_CELLS / best * 60:.1f} "
          f"min at the best concurrency{scaled}")


if __name__ == "__main__":
    main()
