"""run_cell: one grid cell end to end, resumable, owned by one process, recorded in MLflow.

The cell's files are under ``<cells_dir>/<cell_id>/`` (bpgrid/cellfiles.py). A finished cell
returns its stored result without training. Otherwise the cell's lease is taken (bpgrid/lease.py:
one owner at a time, wherever it runs), and the cell resumes from its last readable checkpoint,
or starts. Every error of the cell (its config's data, its files, the store, the disk) ends as
its ``failed`` result with the error text and a failure marker, never as an exception: the worker
that ran it goes on to the next cell. A stop (a signal) is not a failure: the run is marked
KILLED, the lease given back, and the stop goes on up.
"""

from __future__ import annotations

import functools
import math
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from bpgrid import __version__, shutdown
from bpgrid.cellfiles import (
    CellFiles,
    clear_failure,
    journal,
    read_failure,
    stored_result,
    write_failure,
)
from bpgrid.checkpoint import load_checkpoint, save_checkpoint, save_json
from bpgrid.config import cell_id, flat_params, to_dict, validate
from bpgrid.divergence import chance_loss, divergence, finite_weights
from bpgrid.lease import Lease, LostLease, Owned, acquire, describe
from bpgrid.migrate import migrate
from bpgrid.naming import curve_title, run_name
from bpgrid.plots import learning_curve
from bpgrid.tracking import Tracker
from bpgrid.trainer import Trainer, finite


@dataclass
class CellResult:
    """What a cell reports (the JSON line ``python -m bpgrid.train`` ends with)."""

    cell_id: str
    status: str  # done | diverged | failed | running (another live owner has the cell)
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
    diverged_because: str | None = None
    set_aside: list[str] = field(default_factory=list)  # unreadable files moved aside
    run_ended: bool = False  # the MLflow run was ended after the result was stored
    owner: str | None = None  # who has the cell, when it is running elsewhere

    @classmethod
    def stored(cls, data: dict[str, Any], **changes) -> CellResult:
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in known}, **changes})


@functools.cache
def code_version() -> str:
    """The git commit of the package, or its version when not in a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip() or __version__
    except OSError:
        return __version__


def _show_progress(mode: str) -> bool:
    return mode == "always" or (mode == "auto" and sys.stderr.isatty())


class _Cell:
    """One call of run_cell: the cell's config, files, tracker and what it set aside."""

    def __init__(self, c: dict[str, Any]) -> None:
        self.c, self.cid = c, cell_id(c)
        self.files = CellFiles(Path(c["cells_dir"]) / self.cid)
        self.sweep = str(c["grid"].get("sweep_id", ""))
        self.aside: list[str] = []
        self._tracker: Tracker | None = None
        self.start = time.perf_counter()
        self.token: str | None = None  # of the lease, once held

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            t = self.c["tracking"]
            self._tracker = Tracker(t["uri"], t["experiment"], t.get("artifacts"))
        return self._tracker

    def result(self, status: str, **values) -> CellResult:
        return CellResult(self.cid, status, None, None, None, values.pop("epochs_run", 0),
                          values.pop("resumed_from_epoch", None), cell_dir=str(self.files.folder),
                          set_aside=self.aside, **values)

    def finished(self) -> CellResult | None:
        """The stored result, its MLflow run ended if a kill came between the two."""
        stored, moved = stored_result(self.files)
        self.aside += moved
        if stored is None:
            return None
        if not stored.get("run_ended") and stored.get("run_id"):
            self.tracker.close(stored["run_id"])
            stored["run_ended"] = True
            save_json(self.files.result, stored)
        return CellResult.stored(stored, cached=True, set_aside=self.aside)

    def failed(self, err: BaseException | str, run_id: str | None = None,
               checkpoint: dict | None = None) -> CellResult:
        """The cell's failed result; its run FAILED and its failure marker written, as far as
        the store and the disk still allow."""
        error = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        if not isinstance(err, str):
            print(f"bpgrid: cell {self.cid} failed:\n"
                  + "".join(traceback.format_exception(err)), file=sys.stderr)
        if run_id is not None:
            try:
                self.tracker.fail(run_id, error if isinstance(err, str)
                                  else "".join(traceback.format_exception(err)))
            except Exception as also:
                error += f" (and its MLflow run could not be marked FAILED: {also})"
        write_failure(self.files, error, self.sweep, self.aside)
        journal(self.files, "end", token=self.token, status="failed", error=error[-500:])
        return self.result("failed", error=error, run_id=run_id,
                           epochs_run=len(checkpoint["history"]) if checkpoint else 0,
                           resumed_from_epoch=checkpoint["epoch"] if checkpoint else None)


def run_cell(cfg: DictConfig | dict, *, token: str | None = None) -> CellResult:
    """Train (or resume, or look up) the cell of this resolved config. ``token``: the lease a
    sweep reserved for this cell's job (bpgrid/backends/slurm.py)."""
    validate(cfg)
    cell = _Cell(to_dict(cfg))
    try:
        migrate(cell.c, lambda old, new: cell.tracker.retag(old, new))
        if (done := cell.finished()) is not None:
            return done
        lease = acquire(cell.files.lease, sweep_id=cell.sweep, token=token)
        keep = False
        try:
            return _said(cell, _owned(cell, lease))
        except BaseException as err:  # a stopped SLURM task: its job may be requeued
            keep = token is not None and _as_stop(err) is not None
            raise
        finally:
            lease.keep_for_job() if keep else lease.release()
    except Owned as err:
        return cell.result("running", owner=describe(err.holder), error=str(err))
    except Exception as err:  # the cell's files or store, before it could start
        if (stop := _as_stop(err)) is not None:
            raise stop from err
        return _said(cell, cell.failed(err))


def _owned(cell: _Cell, lease: Lease) -> CellResult:
    """The cell, its lease held: not retried within one sweep, else resumed or started."""
    cell.token = lease.token
    if (done := cell.finished()) is not None:  # finished by the owner before this one
        return done
    failure = read_failure(cell.files)
    if cell.sweep and failure and failure.get("sweep_id") == cell.sweep:
        return cell.result("failed", cached=True, error=f"failed earlier in this sweep: "
                                                        f"{failure.get('error')}")
    before = lease.took_over
    if cell.sweep and before and before.get("sweep_id") == cell.sweep:
        return cell.failed(f"its owner in this sweep died while training it: {describe(before)}")
    checkpoint, moved = load_checkpoint(cell.files.checkpoint)
    cell.aside += moved
    run_id = None
    try:
        run_id = _start_run(cell, checkpoint)
        journal(cell.files, "start", token=lease.token, sweep_id=cell.sweep, run_id=run_id,
                resumed_from=checkpoint["epoch"] if checkpoint else None)
        _say(cell, f"resumed from epoch {checkpoint['epoch']}" if checkpoint else "started")
        result = _train(cell, checkpoint, run_id, lease)
        result.cell_seconds = time.perf_counter() - cell.start
        with shutdown.signals_deferred():
            lease.check()
            save_json(cell.files.result, asdict(result))  # before FINISHED: a kill in between
            cell.tracker.finish(run_id)  # leaves a result whose run the next look-up ends
            result.run_ended = True
            try:
                save_json(cell.files.result, asdict(result))
            except OSError:  # a full disk: the stored result stands, and the next
                pass  # look-up ends its (already FINISHED) run again and marks it
    except LostLease as err:  # another owner has the cell (and its run) now
        journal(cell.files, "end", token=lease.token, status="lost", error=str(err))
        return cell.result("running", owner="the owner that took it over", error=str(err),
                           run_id=run_id)
    except BaseException as err:
        stop = _as_stop(err)
        if stop is None:
            return cell.failed(err, run_id, checkpoint)
        if run_id is not None:
            try:
                cell.tracker.stop(run_id)
            except Exception:
                pass  # a RUNNING run is resumed all the same
        journal(cell.files, "end", token=lease.token, status="stopped")
        _say(cell, "stopped; it resumes from its checkpoint")
        if stop is err:
            raise
        raise stop from err
    clear_failure(cell.files)
    journal(cell.files, "end", token=lease.token, status=result.status)
    return result


def _say(cell: _Cell, what: str) -> None:
    """A line in the log of the process that runs the cell (a worker's, a SLURM task's): the
    cell by its method, dataset, LR scale and seed, and what became of it."""
    c = cell.c
    print(f"cell {cell.cid} (method={(c.get('method') or {}).get('name', '-')} "
          f"dataset={c['dataset']['name']} lr_scale={c['lr_scale']:g} seed={c['seed']}): {what}",
          file=sys.stderr, flush=True)


def _said(cell: _Cell, result: CellResult) -> CellResult:
    """The result, its end told in the log unless it was only looked up."""
    seconds = f"{time.perf_counter() - cell.start:.1f} s"
    if result.cached:
        return result
    if result.status in ("done", "diverged"):
        best = ("no finite val error" if result.best_val_error is None else
                f"best val error {result.best_val_error:.2f}% (epoch {result.best_epoch})")
        why = f" ({result.diverged_because})" if result.diverged_because else ""
        _say(cell, f"{result.status}{why}, {best}, {result.epochs_run} epochs, {seconds}")
    else:
        error = (result.error or "").strip().splitlines()
        _say(cell, f"{result.status} after {seconds}: {error[0] if error else '?'}")
    return result


def _as_stop(err: BaseException) -> BaseException | None:
    """The stop this exception is (a signal's, or any error while a signal asked to stop,
    such as one torch made of it), or None if it is the cell's own failure."""
    if not isinstance(err, Exception):
        return err
    return shutdown.requested()


def _start_run(cell: _Cell, checkpoint: dict | None) -> str:
    c = cell.c
    method = c.get("method", {})
    tags = {"grid": c["grid"]["name"], "method": method.get("name", ""),
            "method_label": method.get("label", ""), "dataset": c["dataset"]["name"],
            "dataset_root": str(c["dataset"].get("root")), "code_version": code_version(),
            "sweep_id": cell.sweep}
    return cell.tracker.start(cell.cid, flat_params(c), tags,
                              checkpoint["run_id"] if checkpoint else None,
                              name=c["tracking"].get("run_name") or run_name(c),
                              parent=c["tracking"].get("parent_run_id"))


def _best(history: list[dict[str, float]], chance: float | None
          ) -> tuple[float | None, int | None]:
    """Lowest validation error and its epoch, over the epochs that did not diverge."""
    scored = [(h["val_error"], h["epoch"]) for h in history
              if math.isfinite(h["val_error"]) and divergence(h, chance) is None]
    return min(scored) if scored else (None, None)


def _train(cell: _Cell, checkpoint: dict | None, run_id: str, lease: Lease) -> CellResult:
    c, tracker = cell.c, cell.tracker
    trainer = Trainer([c])  # the cell as an array of one
    chance = chance_loss(trainer.parts.loss_fn, trainer.parts.data)
    history: list[dict[str, float]] = []
    train_seconds, resumed_from, diverged = 0.0, None, None
    logged = tracker.logged_epochs(run_id)
    if checkpoint is not None:
        try:
            trainer.load_state(0, checkpoint["state"], checkpoint["history"])
        except Exception as err:
            raise RuntimeError(f"cannot resume from {cell.files.checkpoint} (epoch "
                               f"{checkpoint['epoch']}): {type(err).__name__}: {err}") from err
        history, train_seconds = checkpoint["history"], checkpoint["train_seconds"]
        resumed_from = checkpoint["epoch"]
        for h in history:  # epochs checkpointed but not yet logged
            if h["epoch"] not in logged:
                tracker.log_epoch(run_id, h)
        if history:  # a cell that had diverged before its end trains no further
            diverged = divergence(history[-1], chance,
                                  finite_weights(checkpoint["state"]["model"].values()))
    epochs = c["schedule"]["epochs"]
    progress = _show_progress(c["progress"])
    for epoch in range(len(history) + 1, epochs + 1):
        if diverged:
            break
        metrics = {"epoch": epoch, **trainer.train_epoch(epoch)[0]}
        train_seconds += metrics["epoch_time"]
        history.append(metrics)
        state = trainer.state(0)
        diverged = divergence(metrics, chance, finite_weights(state["model"].values()))
        lease.check()  # a copy that lost its lease writes nothing more
        with shutdown.signals_deferred():
            save_checkpoint(cell.files.checkpoint, {
                "epoch": epoch, "state": state, "history": history, "run_id": run_id,
                "train_seconds": train_seconds})
        if epoch not in logged:  # an epoch trained again after its checkpoint was set aside
            tracker.log_epoch(run_id, metrics)
        if progress:
            print(f"[{cell.cid}] epoch {epoch}/{epochs} loss {metrics['train_loss']:.4f} "
                  f"val {metrics['val_error']:.2f} ({metrics['epoch_time']:.1f}s)",
                  file=sys.stderr, flush=True)
    best, best_epoch = _best(history, chance)
    result = cell.result(
        "diverged" if diverged else "done", run_id=run_id, train_seconds=train_seconds,
        epochs_run=len(history), resumed_from_epoch=resumed_from, diverged_because=diverged)
    result.best_val_error, result.best_epoch = best, best_epoch
    result.final_val_error = finite(history[-1]["val_error"]) if history else None
    _record_end(c, cell.files.folder, history, result, tracker)
    return result


def _record_end(c: dict, cell_dir: Path, history: list[dict], result: CellResult,
                tracker: Tracker) -> None:
    final = {"best_val_error": result.best_val_error, "best_epoch": result.best_epoch,
             "diverged": float(result.status == "diverged")}
    tracker.log_metrics(result.run_id, {k: v for k, v in final.items() if v is not None},
                        result.epochs_run)
    tags = {"status": result.status}
    if result.diverged_because:
        tags["diverged_because"] = result.diverged_because
    tracker.set_tags(result.run_id, tags)
    config_file = cell_dir / "config.yaml"
    config_file.write_text(yaml.safe_dump(c, sort_keys=False))
    curve = learning_curve(history, cell_dir / "learning_curve.png", title=curve_title(c))
    for path in (config_file, curve):
        tracker.log_artifact(result.run_id, path)
