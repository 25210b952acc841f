"""Train-step cost of the feedback layers against PyTorch's native layers, side by side.

    python benchmarks/feedback_overhead.py [--reps 30] [--device cpu|cuda] [--threads N]

For every layer rule: the median time of one training step (forward, backward with the input
gradient, SGD update) of FeedbackLinear / FeedbackConv2d against nn.Linear / nn.Conv2d, measured
interleaved in one run, printed as ratios. Then every rule, the network rule dfa included, on
whole nets (Liao et al.'s CIFAR and TIMIT nets) against the same net with bp, whose layers take
PyTorch's native path. Then UntiedConv2d against the dense-matrix formulation of the reference
report on its first CIFAR layer (32×32×3 input, 5×5 kernels, 32 channels, padding 2): parameter
memory (weights, biases and feedback state) and step time.
Targets: ratio <= 1.05 for fixed rules, <= 1.15 for brsf, untied memory >= 20x smaller.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from bpgrid.feedback import RULES, FeedbackConv2d, FeedbackLinear, UntiedConv2d
from bpgrid.models import build_model

TARGET = {"brsf": 1.15}
DEFAULT_TARGET = 1.05


def step_fn(layer: nn.Module, x: torch.Tensor, device: str):
    opt = torch.optim.SGD(layer.parameters(), lr=1e-6)

    def step():
        opt.zero_grad(set_to_none=True)
        xi = x.detach().requires_grad_(True)
        layer(xi).square().mean().backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
    return step


def race(steps: dict[str, callable], reps: int, warmup: int = 3) -> dict[str, float]:
    """Median seconds per step for each entry, measured round-robin so noise hits all alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(reps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def rule_ratios(reps: int, device: str) -> None:
    torch.manual_seed(0)
    # The largest FC layer of Liao et al.'s TIMIT-80 net and the second conv of their CIFAR net,
    # at the paper's batch size.
    cases = {
        "linear 1845->512 (TIMIT fc1), batch 100": (
            lambda rule: FeedbackLinear(1845, 512, rule=rule, device=device),
            lambda: nn.Linear(1845, 512, device=device),
            torch.randn(100, 1845, device=device)),
        "conv 5x5 32->64 on 16x16 (CIFAR conv2), b 100": (
            lambda rule: FeedbackConv2d(32, 64, 5, padding=2, rule=rule, device=device),
            lambda: nn.Conv2d(32, 64, 5, padding=2, device=device),
            torch.randn(100, 32, 16, 16, device=device)),
    }
    print(f"{'layer':46s} {'rule':6s} {'native ms':>10s} {'ours ms':>9s} {'ratio':>6s} "
          f"{'target':>6s}")
    layer_rules = [rule for rule in RULES if not RULES[rule].network]
    for label, (make, make_native, x) in cases.items():
        steps = {"native": step_fn(make_native(), x, device)}
        for rule in layer_rules:
            steps[rule] = step_fn(make(rule), x, device)
        med = race(steps, reps)
        for rule in layer_rules:
            ratio = med[rule] / med["native"]
            target = TARGET.get(rule, DEFAULT_TARGET)
            flag = "ok" if ratio <= target else "OVER"
            print(f"{label:46s} {rule:6s} {med['native'] * 1e3:10.2f} {med[rule] * 1e3:9.2f} "
                  f"{ratio:6.3f} {target:6.2f} {flag}")


def whole_net_ratios(reps: int, device: str) -> None:
    """Liao et al.'s CIFAR net (conv, BN) and TIMIT net (FC, BN) with every rule on every layer
    against the same net with bp, whose layers take PyTorch's native path: what a cell of Table 2
    pays for its feedback rule. dfa pays for its hooks and the products B e; the input gradients
    it replaces are still computed (they are what its alignment statistics compare against)."""
    nets = {"CIFAR net of Liao et al. (conv, BN, batch 100)": ("liao_cifar", (3, 32, 32)),
            "TIMIT net of Liao et al. (FC, BN, batch 100)": ("liao_fc", (1845,))}
    for label, (model, shape) in nets.items():
        torch.manual_seed(0)
        x = torch.randn(100, *shape, device=device)
        y = torch.randint(0, 10, (100,), device=device)

        def step_of(rule, model=model, shape=shape, x=x, y=y):
            net = build_model(model, input_shape=shape, num_classes=10, feedback=rule,
                              norm="bn").to(device)
            opt = torch.optim.SGD(net.parameters(), lr=1e-6)

            def step():
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(net(x), y).backward()
                opt.step()
                if device == "cuda":
                    torch.cuda.synchronize()
            return step

        med = race({rule: step_of(rule) for rule in RULES}, reps)
        print(f"\nwhole {label}: step time against bp (native layers)")
        for rule in RULES:
            print(f"  {rule:6s} {med[rule] * 1e3:8.2f} ms  ratio {med[rule] / med['bp']:6.3f}")


def parameter_bytes(module: nn.Module) -> int:
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def untied_vs_dense(reps: int, device: str, batch: int) -> None:
    torch.manual_seed(0)
    untied = UntiedConv2d(3, 32, 32, 5, padding=2, rule="rndf", device=device)
    # The report's formulation: the layer as one dense (inputs x outputs) matrix, plus its
    # random feedback matrix of the same size.
    dense = FeedbackLinear(3 * 32 * 32, 32 * 32 * 32, rule="rndf", device=device)
    flat = nn.Sequential(nn.Flatten(), dense)
    x = torch.randn(batch, 3, 32, 32, device=device)
    med = race({"untied": step_fn(untied, x, device), "dense": step_fn(flat, x, device)},
               reps, warmup=1)
    ub, db = parameter_bytes(untied), parameter_bytes(dense)
    print(f"\nUntiedConv2d vs dense matrix, first CIFAR layer (32x32x3, 5x5, 32 ch), batch {batch}")
    print(f"  parameter memory: untied {ub / 2**20:8.1f} MiB   dense {db / 2**20:8.1f} MiB   "
          f"dense/untied {db / ub:5.1f}x (target >= 20x) {'ok' if db / ub >= 20 else 'UNDER'}")
    print(f"  step time:        untied {med['untied'] * 1e3:8.1f} ms    dense "
          f"{med['dense'] * 1e3:8.1f} ms    dense/untied {med['dense'] / med['untied']:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--untied-reps", type=int, default=5)
    parser.add_argument("--untied-batch", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (one is steadier on a machine shared with other jobs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    rule_ratios(args.reps, args.device)
    whole_net_ratios(max(5, args.reps // 4), args.device)
    untied_vs_dense(args.untied_reps, args.device, args.untied_batch)


if __name__ == "__main__":
    main()
