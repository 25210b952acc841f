"""Liao et al.'s CIFAR net at batch 100 on CIFAR-shaped synthetic data: bpgrid's trainer against a
plain PyTorch DataLoader loop, and cells per hour with several cells sharing one device.

    python benchmarks/gpu_throughput.py                      # on a GPU: 50000 images, 2 epochs
    python benchmarks/gpu_throughput.py --mps                # also with a private CUDA MPS daemon
    python benchmarks/gpu_throughput.py --train 2000 --epochs 1 --concurrency 1 2   # a CPU check

bpgrid's path: the dataset lives on the device as tensors, batches are index gathers, losses and
error counts accumulate on the device and are read once per epoch, and on a GPU each training
step is a replayed CUDA graph (``cuda_graphs=false`` measures the eager step too). The plain loop:
a CPU TensorDataset through a shuffling DataLoader, each batch copied to the device,
``loss.item()`` every step (the usual tutorial loop), same net (plain nn layers), same optimizer.
Concurrency: N processes each train one cell on the same device, timed together after each has
built its cell and run a warm-up epoch; cells/hour counts full 65-epoch cells. Without MPS the
GPU time-slices between processes; with ``--mps`` (bpgrid.mps, as the local launcher uses it)
their kernels run side by side.
Targets on one H100: an epoch < 1.5 s; Table 2's CIFAR-10 column (11 methods x 5 LR scales =
55 cells x 65 epochs) in < 20 minutes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bpgrid import mps
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
    trainer = Trainer([cell_config(device, overrides)], synthetic(n, device))
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


def _worker(method: str, device: str, n: int, epochs: int, threads: int, barrier, spans) -> None:
    torch.set_num_threads(threads)
    trainer = Trainer([cell_config(device, [f"method={method}"])], synthetic(n, device))
    trainer.train_epoch(1)  # warm-up: allocator, kernels, graph capture
    barrier.wait()
    start = time.monotonic()  # one clock for all processes
    for epoch in range(2, epochs + 2):
        trainer.train_epoch(epoch)
    spans.put((start, time.monotonic()))


def concurrent_cells_per_hour(k: int, method: str, device: str, n: int, epochs: int,
                              full: int) -> float:
    """k processes train one cell each on the device; full-size 65-epoch cells per hour."""
    threads = max(1, torch.get_num_threads() // k) if device == "cpu" else 1
    ctx = mp.get_context("spawn")
    barrier, spans = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(method, device, n, epochs, threads, barrier, spans))
             for _ in range(k)]
    for proc in procs:
        proc.start()
    got = []
    while len(got) < k:  # a worker that dies would leave the others at the barrier
        try:
            got.append(spans.get(timeout=5))
        except queue.Empty:
            if any(proc.exitcode not in (None, 0) for proc in procs):
                for proc in procs:
                    proc.terminate()
                raise RuntimeError(f"a worker failed: exit codes "
                                   f"{[proc.exitcode for proc in procs]}") from None
    for proc in procs:
        proc.join()
    wall = max(end for _, end in got) - min(start for start, _ in got)
    seconds_per_cell = wall / k * (PAPER_EPOCHS * full) / (epochs * n)
    return 3600 / seconds_per_cell


def concurrency_table(args, scaled: str, label: str) -> None:
    best = 0.0
    for k in args.concurrency:
        rate = concurrent_cells_per_hour(k, args.method, args.device, args.train, args.epochs,
                                         50000)
        best = max(best, rate)
        print(f"  {k} concurrent cells{label}: {rate:7.2f} full 65-epoch cells per hour per device",
              flush=True)
    minutes = TABLE2_CELLS / best * 60
    print(f"Table 2's CIFAR-10 column (55 cells x 65 epochs){label}: {minutes:.1f} min at the "
          f"best concurrency (target < 20 min){scaled}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train", type=int, default=50000, help="synthetic training images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--method", default="usf_bn_bm")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--mps", action="store_true",
                        help="also run the concurrent cells under a private CUDA MPS daemon")
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    scaled = "" if args.train == 50000 else f" (scaled from {args.train} images to 50000)"
    print(f"device {args.device} ({name}), torch {torch.__version__}, CIFAR net, batch 100, "
          f"method {args.method}, {args.train} images, {args.epochs} timed epochs")
    same = ["method=sgd", "norm=bn", "schedule.bn_ema_batches=0"]
    ours = ours_epoch_seconds(same, args.device, args.train, args.epochs)
    eager = ours_epoch_seconds([*same, "cuda_graphs=false"], args.device, args.train, args.epochs)
    plain = plain_epoch_seconds(args.device, args.train, args.epochs)
    protocol = ours_epoch_seconds([f"method={args.method}"], args.device, args.train,
                                  args.epochs)
    per_50k = 50000 / args.train
    print(f"epoch, SGD+BN, same work: bpgrid {ours * per_50k:7.2f} s   bpgrid eager steps "
          f"{eager * per_50k:7.2f} s   plain DataLoader loop {plain * per_50k:7.2f} s   "
          f"plain/bpgrid {plain / ours:4.2f}x{scaled}", flush=True)
    print(f"epoch, {args.method} with the full Liao protocol (BN EMA over 20 batches): "
          f"{protocol * per_50k:7.2f} s (target on an H100: < 1.5 s){scaled}", flush=True)
    concurrency_table(args, scaled, "")
    if args.mps:
        with mps.daemon() as started:
            if not started:
                raise SystemExit("CUDA MPS did not start")
            concurrency_table(args, scaled, " with MPS")


if __name__ == "__main__":
    main()
