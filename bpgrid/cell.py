"""run_array, run_cell: cells end to end, resumable, each owned by one process, in MLflow.

A cell's files are under ``<cells_dir>/<cell_id>/`` (bpgrid/cellfiles.py). ``run_array`` takes
cells and trains those of one structure (bpgrid/arrays/structure.py) together as one fused array,
each member kept exactly as its cell alone: a finished cell returns its stored result without
training; otherwise the cell's lease is taken (bpgrid/lease.py: one owner at a time, wherever it
runs; a cell another live owner holds is reported ``running`` and left out), and it resumes from
its last readable checkpoint, or starts, in its own MLflow run. Members resuming at different
epochs train as separate arrays, one per epoch they start at. Every epoch each member writes its
checkpoint. Its epochs go to its run after its first epoch, then at most every LOG_SECONDS, and at
its end, one write each time (each checkpoint holds the history, so epochs that a kill kept from
the run are logged when the cell resumes). A member that diverges ends there with its result
while the others go on. ``run_cell`` is an array of one.

Every error of a cell (its config's data, its files, the store, the disk) ends as its ``failed``
result with the error text and a failure marker, never as an exception: the other members and the
worker's next cells go on. An error of the array's own training fails the members it trains. A
stop (a signal) is not a failure: each member's run is marked KILLED, its lease given back, and
the stop goes on up.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

import yaml
from omegaconf import DictConfig

from bpgrid import shutdown
from bpgrid.arrays.memory import members_that_fit
from bpgrid.arrays.structure import structure_key
from bpgrid.cellfiles import clear_failure, journal, read_failure
from bpgrid.checkpoint import load_checkpoint, save_checkpoint, save_json
from bpgrid.config import flat_params, to_dict, validate
from bpgrid.divergence import chance_loss, divergence, finite_weights
from bpgrid.lease import Owned, acquire, describe
from bpgrid.member import CellResult, Member, alone, as_stop, code_version, stopped
from bpgrid.migrate import migrate
from bpgrid.naming import run_name
from bpgrid.parts import load_data, plain_model, resolve_device
from bpgrid.trainer import Trainer, finite

__all__ = ["CellResult", "code_version", "run_array", "run_cell"]

LOG_SECONDS = 10.0  # the most time an epoch waits to be written to its MLflow run (the
# status's best error so far comes from there)


def _show_progress(mode: str) -> bool:
    return mode == "always" or (mode == "auto" and sys.stderr.isatty())


def run_cell(cfg: DictConfig | dict, *, token: str | None = None) -> CellResult:
    """Train (or resume, or look up) the cell of this resolved config, an array of one.
    ``token``: the lease a sweep reserved for this cell's job (bpgrid/backends/slurm.py)."""
    return run_array([cfg], tokens=[token])[0]


def run_array(configs: Sequence[DictConfig | dict],
              tokens: Sequence[str | None] | None = None) -> list[CellResult]:
    """Train (or resume, or look up) these cells, those of one structure as one fused array;
    each cell's result, in order. ``tokens``: the leases a sweep reserved for the cells."""
    for cfg in configs:
        validate(cfg)
    cells = [Member(to_dict(cfg)) for cfg in configs]
    tokens = list(tokens) if tokens is not None else [None] * len(cells)
    try:
        for cell, token in zip(cells, tokens, strict=True):  # the leases first, all at once
            _take(cell, token)
        for cell in cells:
            if cell.outcome is None:
                alone(cell, _owned)
        arrays: dict[str, list[Member]] = {}  # by structure and the epoch they start at
        for cell in cells:
            if cell.outcome is None:
                arrays.setdefault(structure_key(cell.c, cell.start_epoch), []).append(cell)
        for array in sorted(arrays.values(), key=lambda a: a[0].start_epoch):
            for part in _fitting(array):
                _train(part)
    except BaseException as err:  # a stopped SLURM task: its job may be requeued
        if (stop := as_stop(err)) is None:
            raise
        for cell, token in zip(cells, tokens, strict=True):
            if cell.open:
                stopped(cell, keep=token is not None)
        if stop is err:
            raise
        raise stop from err
    finally:
        for cell in cells:
            if cell.lease is not None:
                cell.lease.release()
    return [cell.outcome for cell in cells]


def _take(cell: Member, token: str | None) -> None:
    """Look the cell up and take its lease: its result when it ends here (finished, owned by
    another, failed)."""
    try:
        migrate(cell.c, lambda old, new: cell.tracker.retag(old, new))
        if (done := cell.finished()) is not None:
            cell.outcome = done
            return
        cell.lease = acquire(cell.files.lease, sweep_id=cell.sweep, token=token)
        cell.token = cell.lease.token
    except Owned as err:
        cell.outcome = cell.result("running", owner=describe(err.holder), error=str(err))
    except Exception as err:  # the cell's files or store, before it could start
        if (stop := as_stop(err)) is not None:
            raise stop from err
        cell.end(cell.failed(err))


def _owned(cell: Member) -> None:
    """The cell, its lease held: not retried within one sweep, else its checkpoint read and its
    run started (or resumed)."""
    if (done := cell.finished()) is not None:  # finished by the owner before this one
        cell.end(done)
        return
    failure = read_failure(cell.files)
    if cell.sweep and failure and failure.get("sweep_id") == cell.sweep:
        cell.end(cell.result("failed", cached=True, error=f"failed earlier in this sweep: "
                                                          f"{failure.get('error')}"))
        return
    before = cell.lease.took_over
    if cell.sweep and before and before.get("sweep_id") == cell.sweep:
        cell.end(cell.failed(f"its owner in this sweep died while training it: "
                             f"{describe(before)}"))
        return
    cell.checkpoint, moved = load_checkpoint(cell.files.checkpoint)
    cell.aside += moved
    cell.run_id = _start_run(cell, cell.checkpoint)
    journal(cell.files, "start", token=cell.token, sweep_id=cell.sweep, run_id=cell.run_id,
            resumed_from=cell.checkpoint["epoch"] if cell.checkpoint else None)
    cell.say(f"resumed from epoch {cell.checkpoint['epoch']}" if cell.checkpoint else "started")


def _start_run(cell: Member, checkpoint: dict | None) -> str:
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


def _fitting(cells: list[Member]) -> list[list[Member]]:
    """The array split into arrays that fit the free memory of the GPU it trains on
    (bpgrid/arrays/memory.py), unless ``grid.max_array`` sized it; as it is on a CPU."""
    c = cells[0].c
    try:
        device = resolve_device(c["device"])
        if device.type != "cuda" or len(cells) == 1 or c["grid"].get("max_array") is not None:
            return [cells]
        data = load_data(c, device)
        k = members_that_fit(plain_model(c, data), data, c, device)
    except Exception:  # the array's own start fails the same way, for each of its members
        return [cells]
    return [cells[i:i + k] for i in range(0, len(cells), k)]


def _train(cells: list[Member]) -> None:
    """Cells of one structure starting at one epoch, trained as one array; each ends with its
    result as it would alone. An error of the array's training fails them all."""
    try:
        trainer = Trainer([cell.c for cell in cells])
        chance = chance_loss(trainer.parts.loss_fn, trainer.parts.data)
    except Exception as err:
        if (stop := as_stop(err)) is not None:
            raise stop from err
        for cell in cells:
            cell.end(cell.failed(err))
        return
    for k, cell in enumerate(cells):
        cell.chance, cell.share = chance, len(cells)
        alone(cell, _resume, trainer, k)
    epochs = cells[0].c["schedule"]["epochs"]
    progress = _show_progress(cells[0].c["progress"])
    first, flushed = cells[0].start_epoch, time.monotonic()
    for epoch in range(first, epochs + 1):
        training = [k for k, cell in enumerate(cells) if cell.outcome is None
                    and not cell.diverged]
        if not training:
            break
        try:
            metrics = trainer.train_epoch(epoch)
        except Exception as err:
            if (stop := as_stop(err)) is not None:
                raise stop from err
            for k in training:
                cells[k].end(cells[k].failed(err))
            return
        for k in training:
            alone(cells[k], _epoch_done, epoch, metrics[k], trainer.state(k), progress)
        if epoch == first or time.monotonic() - flushed >= LOG_SECONDS:
            for cell in cells:
                if cell.outcome is None:
                    alone(cell, Member.flush)
            flushed = time.monotonic()
    for cell in cells:
        if cell.outcome is None:
            alone(cell, _end)


def _resume(cell: Member, trainer: Trainer, k: int) -> None:
    """Member k takes up the cell's checkpoint; epochs checkpointed but not in its run go in its
    run's next write; a cell that had diverged before its end trains no further."""
    cell.logged = cell.tracker.logged_epochs(cell.run_id)
    checkpoint = cell.checkpoint
    if checkpoint is None:
        return
    try:
        trainer.load_state(k, checkpoint["state"], checkpoint["history"])
    except Exception as err:
        raise RuntimeError(f"cannot resume from {cell.files.checkpoint} (epoch "
                           f"{checkpoint['epoch']}): {type(err).__name__}: {err}") from err
    cell.history, cell.train_seconds = list(checkpoint["history"]), checkpoint["train_seconds"]
    cell.unlogged = [h for h in cell.history if h["epoch"] not in cell.logged]
    if cell.history:
        cell.diverged = divergence(cell.history[-1], cell.chance,
                                   finite_weights(checkpoint["state"]["model"].values()))
    if cell.diverged:
        _end(cell)


def _epoch_done(cell: Member, epoch: int, metrics: dict[str, float], state: dict,
                progress: bool) -> None:
    """The cell's epoch: judged, checkpointed, kept for its run's next write; its end when it
    diverged."""
    metrics = {"epoch": epoch, **metrics}
    cell.train_seconds += metrics["epoch_time"]
    cell.history.append(metrics)
    cell.diverged = divergence(metrics, cell.chance, finite_weights(state["model"].values()))
    cell.lease.check()  # a copy that lost its lease writes nothing more
    with shutdown.signals_deferred():
        save_checkpoint(cell.files.checkpoint, {
            "epoch": epoch, "state": state, "history": cell.history, "run_id": cell.run_id,
            "train_seconds": cell.train_seconds})
    if epoch not in cell.logged:  # an epoch trained again after its checkpoint was set aside
        cell.unlogged.append(metrics)
    if progress:
        epochs = cell.c["schedule"]["epochs"]
        print(f"[{cell.cid}] epoch {epoch}/{epochs} loss {metrics['train_loss']:.4f} "
              f"val {metrics['val_error']:.2f} ({metrics['epoch_time']:.1f}s)",
              file=sys.stderr, flush=True)
    if cell.diverged:
        _end(cell)


def _end(cell: Member) -> None:
    """The cell's result: recorded in its run, stored, its run ended, its lease given back."""
    history = cell.history
    best, best_epoch = _best(history, cell.chance)
    result = cell.result(
        "diverged" if cell.diverged else "done", run_id=cell.run_id,
        train_seconds=cell.train_seconds, epochs_run=len(history),
        resumed_from_epoch=cell.checkpoint["epoch"] if cell.checkpoint else None,
        diverged_because=cell.diverged)
    result.best_val_error, result.best_epoch = best, best_epoch
    result.final_val_error = finite(history[-1]["val_error"]) if history else None
    _record_end(cell, result)
    result.cell_seconds = (time.perf_counter() - cell.start) / cell.share
    with shutdown.signals_deferred():
        cell.lease.check()
        save_json(cell.files.result, asdict(result))  # before FINISHED: a kill in between
        cell.tracker.finish(cell.run_id)  # leaves a result whose run the next look-up ends
        result.run_ended = True
        try:
            save_json(cell.files.result, asdict(result))
        except OSError:  # a full disk: the stored result stands, and the next
            pass  # look-up ends its (already FINISHED) run again and marks it
    clear_failure(cell.files)
    journal(cell.files, "end", token=cell.token, status=result.status)
    cell.end(result)


def _record_end(cell: Member, result: CellResult) -> None:
    """Its epochs not yet in its run, the result's numbers and tags (one write), and the config
    as the run's artifact. Learning curves are drawn by ``bpgrid.report``, not per cell."""
    final = {"best_val_error": result.best_val_error, "best_epoch": result.best_epoch,
             "diverged": float(result.status == "diverged")}
    tags = {"status": result.status}
    if result.diverged_because:
        tags["diverged_because"] = result.diverged_because
    cell.tracker.log_epochs(result.run_id, cell.unlogged,
                            {k: v for k, v in final.items() if v is not None},
                            result.epochs_run, tags)
    cell.unlogged = []
    config_file = cell.files.folder / "config.yaml"
    config_file.write_text(yaml.safe_dump(cell.c, sort_keys=False))
    cell.tracker.log_artifact(result.run_id, config_file)
