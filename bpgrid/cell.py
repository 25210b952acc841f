"""run_cell: one grid cell end to end, resumable, recorded in MLflow.

Files per cell, under ``<cells_dir>/<cell_id>/``: ``checkpoint.pt`` after every epoch (atomic),
``result.json`` once the cell has finished (done or diverged), ``config.yaml`` and
``learning_curve.png``. A cell started again resumes from its checkpoint; a finished cell returns
its stored result without training. A failure never writes a result, so the cell is retried.
"""

from __future__ import annotations

import functools
import math
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from bpgrid import __version__
from bpgrid.checkpoint import load_checkpoint, load_json, save_checkpoint, save_json
from bpgrid.config import cell_id, flat_params, to_dict, validate
from bpgrid.plots import learning_curve
from bpgrid.tracking import Tracker
from bpgrid.trainer import Trainer, finite


@dataclass
class CellResult:
    """What a cell reports (the JSON line ``python -m bpgrid.train`` ends with)."""

    cell_id: str
    status: str  # done | diverged | failed
    best_val_error: float | None
    best_epoch: int | None
    final_val_error: float | None
    epochs_run: int
    resumed_from_epoch: int | None
    cached: bool = False  # True when the stored result of a finished cell was returned
    run_id: str | None = None
    train_seconds: float = 0.0  # time spent in epochs, summed over all starts of the cell
    cell_seconds: float = 0.0  # run_cell's whole time in its last start (setup, logging too)
    cell_dir: str = ""
    error: str | None = None


@functools.cache
def code_version() -> str:
    """The git commit of the package, or its version when not in a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip() or __version__
    except OSError:
        return __version__


def _best(history: list[dict[str, float]]) -> tuple[float | None, int | None]:
    """Lowest validation error and its epoch, over the epochs that did not diverge."""
    scored = [(h["val_error"], h["epoch"]) for h in history
              if math.isfinite(h["val_error"]) and math.isfinite(h["train_loss"])]
    return min(scored) if scored else (None, None)


def _diverged(history: list[dict[str, float]]) -> bool:
    """The last epoch's training loss was not finite (Liao et al.'s exploding gradients)."""
    return bool(history) and not math.isfinite(history[-1]["train_loss"])


def _show_progress(mode: str) -> bool:
    return mode == "always" or (mode == "auto" and sys.stderr.isatty())


def run_cell(cfg: DictConfig | dict) -> CellResult:
    """Train (or resume, or look up) the cell of this resolved config."""
    start = time.perf_counter()
    validate(cfg)
    c = to_dict(cfg)
    cid = cell_id(c)
    cell_dir = Path(c["cells_dir"]) / cid
    stored = load_json(cell_dir / "result.json")
    if stored is not None:
        return CellResult(**{**stored, "cached": True})
    checkpoint = load_checkpoint(cell_dir / "checkpoint.pt")
    tracking = c["tracking"]
    tracker = Tracker(tracking["uri"], tracking["experiment"], tracking.get("artifacts"))
    method = c.get("method", {})
    tags = {"grid": c["grid"]["name"], "method": method.get("name", ""),
            "method_label": method.get("label", ""), "dataset": c["dataset"]["name"],
            "code_version": code_version(), "sweep_id": str(c["grid"].get("sweep_id", ""))}
    run_id = tracker.start(cid, flat_params(c), tags,
                           checkpoint["run_id"] if checkpoint else None)
    try:
        result = _train(c, cid, cell_dir, checkpoint, tracker, run_id)
    except Exception as err:  # the cell failed; the caller decides what that means for others
        text = "".join(traceback.format_exception(err))
        print(text, file=sys.stderr)
        tracker.fail(run_id, text)
        epochs = len(checkpoint["history"]) if checkpoint else 0
        return CellResult(cid, "failed", None, None, None, epochs,
                          checkpoint["epoch"] if checkpoint else None, run_id=run_id,
                          cell_dir=str(cell_dir), error=f"{type(err).__name__}: {err}")
    result.cell_seconds = time.perf_counter() - start
    save_json(cell_dir / "result.json", asdict(result))  # before FINISHED: a kill in between
    tracker.finish(run_id)  # leaves a stored result, never a finished run without one
    return result


def _train(c: dict[str, Any], cid: str, cell_dir: Path, checkpoint: dict | None,
           tracker: Tracker, run_id: str) -> CellResult:
    trainer = Trainer([c])  # the cell as an array of one
    history: list[dict[str, float]] = []
    train_seconds, resumed_from = 0.0, None
    if checkpoint is not None:
        trainer.load_state(0, checkpoint["state"], checkpoint["history"])
        history, train_seconds = checkpoint["history"], checkpoint["train_seconds"]
        resumed_from = checkpoint["epoch"]
        logged = tracker.logged_epochs(run_id)  # epochs checkpointed but not yet logged
        for h in history:
            if h["epoch"] not in logged:
                tracker.log_metrics(run_id, h, h["epoch"])
    epochs = c["schedule"]["epochs"]
    progress = _show_progress(c["progress"])
    for epoch in range(len(history) + 1, epochs + 1):
        if _diverged(history):  # also when resuming a cell that had diverged before its end
            break
        metrics = {"epoch": epoch, **trainer.train_epoch(epoch)[0]}
        train_seconds += metrics["epoch_time"]
        history.append(metrics)
        save_checkpoint(cell_dir / "checkpoint.pt", {
            "epoch": epoch, "state": trainer.state(0), "history": history, "run_id": run_id,
            "train_seconds": train_seconds})
        tracker.log_metrics(run_id, metrics, epoch)
        if progress:
            print(f"[{cid}] epoch {epoch}/{epochs} loss {metrics['train_loss']:.4f} "
                  f"val {metrics['val_error']:.2f} ({metrics['epoch_time']:.1f}s)",
                  file=sys.stderr, flush=True)
    best, best_epoch = _best(history)
    result = CellResult(
        cid, "diverged" if _diverged(history) else "done", best, best_epoch,
        finite(history[-1]["val_error"]), len(history), resumed_from, run_id=run_id,
        train_seconds=train_seconds, cell_dir=str(cell_dir))
    _record_end(c, cell_dir, history, result, tracker)
    return result


def _record_end(c: dict, cell_dir: Path, history: list[dict], result: CellResult,
                tracker: Tracker) -> None:
    final = {"best_val_error": result.best_val_error, "best_epoch": result.best_epoch,
             "diverged": float(result.status == "diverged")}
    tracker.log_metrics(result.run_id, {k: v for k, v in final.items() if v is not None},
                        result.epochs_run)
    tracker.set_tags(result.run_id, {"status": result.status})
    config_file = cell_dir / "config.yaml"
    config_file.write_text(yaml.safe_dump(c, sort_keys=False))
    curve = learning_curve(history, cell_dir / "learning_curve.png", title=result.cell_id)
    for path in (config_file, curve):
        tracker.log_artifact(result.run_id, path)
