"""A short training demo on embedded data: each feedback rule trains a small net on digits.

    python -m bpgrid.demo [--epochs 10]

Prints the test error per rule, with SGD and with Batch Manhattan (setting 1).
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

from bpgrid.feedback import RULES, FeedbackLinear
from bpgrid.optim import BatchManhattan


def digits(seed: int = 0):
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    n_test = len(y) // 4
    mean, std = x[n_test:].mean(0), x[n_test:].std(0).clamp_min(1e-6)
    x = (x - mean) / std
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


def train(rule: str, optimizer: str, epochs: int, seed: int = 0) -> float:
    (xtr, ytr), (xte, yte) = digits(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(FeedbackLinear(64, 100, rule=rule), nn.BatchNorm1d(100, affine=False),
                        nn.ReLU(), FeedbackLinear(100, 10, rule=rule))
    if optimizer == "bm":
        opt = BatchManhattan(net.parameters(), lr=5e-4, momentum=0.9)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(ytr)).split(100):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xtr[idx]), ytr[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        return 100.0 * (net(xte).argmax(1) != yte).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    print(f"digits, 64-100-10 net with BN, {args.epochs} epochs: test error (%)")
    print(f"{'rule':6s} {'SGD':>7s} {'BM':>7s}")
    for rule in RULES:
        sgd, bm = train(rule, "sgd", args.epochs), train(rule, "bm", args.epochs)
        print(f"{rule:6s} {sgd:7.2f} {bm:7.2f}")


if __name__ == "__main__":
    main()
