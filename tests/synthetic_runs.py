"""A small MLflow store with known numbers, written as the trainer writes runs."""

from __future__ import annotations

from bpgrid.tracking import Tracker

LABELS = {"sgd": "SGD", "usf_bn_bm": "uSF+BN+BM", "nusf": "NuSF", "brsf_bn_bm": "brSF+BN+BM",
          "frsf_bn_bm": "frSF+BN+BM"}

# (dataset, method, seed, lr_scale, MLflow status, cell status, best_val_error)
RUNS = [
    ("mnist", "sgd", 0, 10, "FINISHED", "done", 1.00),
    ("mnist", "sgd", 0, 1, "FINISHED", "done", 0.67),
    ("mnist", "sgd", 0, 0.1, "FINISHED", "done", 0.90),
    ("mnist", "usf_bn_bm", 0, 10, "FINISHED", "done", 0.50),
    ("mnist", "usf_bn_bm", 0, 1, "FINISHED", "done", 0.80),
    ("mnist", "usf_bn_bm", 0, 0.1, "FINISHED", "done", 0.90),
    ("mnist", "nusf", 0, 10, "FAILED", None, None),
    ("mnist", "nusf", 0, 1, "FAILED", None, None),
    ("mnist", "nusf", 0, 0.1, "FAILED", None, None),
    ("mnist", "frsf_bn_bm", 0, 1, "FINISHED", "done", 3.67),
    ("cifar10", "sgd", 0, 10, "FINISHED", "done", 22.0),
    ("cifar10", "sgd", 0, 1, "FINISHED", "done", 23.0),
    ("cifar10", "sgd", 0, 0.1, "FINISHED", "done", 25.0),
    ("cifar10", "sgd", 1, 1, "FINISHED", "done", 24.0),
    ("cifar10", "usf_bn_bm", 0, 1, "FINISHED", "done", 19.5),
    ("cifar10", "nusf", 0, 10, "FINISHED", "done", 40.6),
    ("cifar10", "nusf", 0, 1, "FINISHED", "diverged", 41.0),
    ("cifar10", "brsf_bn_bm", 0, 10, "FINISHED", "diverged", None),
    ("cifar10", "brsf_bn_bm", 0, 1, "FINISHED", "diverged", None),
    ("cifar10", "brsf_bn_bm", 0, 0.1, "FINISHED", "diverged", None),
    ("cifar10", "frsf_bn_bm", 0, 1, "FINISHED", "done", 26.0),
]
COLUMNS = ["sgd", "usf_bn_bm", "nusf", "brsf_bn_bm", "frsf_bn_bm"]


def write_store(uri: str, grid: str = "synthetic", runs=RUNS) -> None:
    tracker = Tracker(uri, grid)
    for n, (dataset, method, seed, scale, mlflow_status, status, best) in enumerate(runs):
        tags = {"grid": grid, "method": method, "method_label": LABELS[method],
                "dataset": dataset}
        run = tracker.start(f"cell{n}", {"lr_scale": str(float(scale)), "seed": str(seed)},
                            tags)
        tracker.log_metrics(run, {"val_error": 50.0}, 1)
        if best is not None:
            tracker.log_metrics(run, {"val_error": best, "best_val_error": best}, 2)
        if mlflow_status == "FAILED":
            tracker.fail(run, "Traceback: boom")
        else:
            tracker.set_tags(run, {"status": status})
            tracker.finish(run)
