"""A cell's folder, ``<cells_dir>/<cell_id>/``, and what its files say about the cell.

    checkpoint.pt, checkpoint.prev.pt  the last two epochs (bpgrid/checkpoint.py)
    result.json                       the result, once the cell is done or diverged
    lease.json                        its owner, while one works on it (bpgrid/lease.py)
    failed.json                       its last failure: the error, the log, the sweep, when
    attempts.jsonl                    a line per start and per end of an owner: who, how it ended
    config.yaml                       written when it ends (also its run's artifact)
    <file>.unreadable-<time>          a file that could not be read, set aside

These are what ``bpgrid.status`` and a rerun read: a cell is finished (a result), owned (a live
lease), failed (a failure marker and no result) or to run. Writing a marker or the journal never
raises: a cell that cannot even record its failure (a full disk) still ends as failed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpgrid.checkpoint import UnreadableFile, read_json, save_json, set_aside
from bpgrid.jobs import me


@dataclass(frozen=True)
class CellFiles:
    """The paths of one cell's files."""

    folder: Path

    @property
    def cell_id(self) -> str:
        return self.folder.name

    @property
    def result(self) -> Path:
        return self.folder / "result.json"

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def lease(self) -> Path:
        return self.folder / "lease.json"

    @property
    def failure(self) -> Path:
        return self.folder / "failed.json"

    @property
    def attempts(self) -> Path:
        return self.folder / "attempts.jsonl"


def read_or_set_aside(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The JSON file's object, or None; an unreadable file is set aside and named."""
    try:
        return read_json(path), []
    except UnreadableFile as err:
        return None, [f"{err} -> {set_aside(path)}"]


def stored_result(files: CellFiles) -> tuple[dict[str, Any] | None, list[str]]:
    """The cell's result, None if it has none (or an unreadable one, then set aside)."""
    result, aside = read_or_set_aside(files.result)
    if result is not None and "status" not in result:
        aside.append(f"{files.result}: not a cell result -> {set_aside(files.result)}")
        result = None
    return result, aside


def write_failure(files: CellFiles, error: str, sweep_id: str, set_aside: list[str]) -> None:
    """Record the cell's failure: the error, this sweep, the log of the process it failed in,
    and the files it set aside."""
    owner = me()
    record = {"cell_id": files.cell_id, "error": error, "sweep_id": sweep_id,
              "time": time.time(), "host": owner["host"], "pid": owner["pid"],
              "job_id": owner["job_id"], "log": owner["log"], "set_aside": set_aside}
    try:
        save_json(files.failure, record)
    except OSError as err:
        print(f"bpgrid: cell {files.cell_id}: could not record its failure in {files.failure}: "
              f"{err}", file=sys.stderr)


def read_failure(files: CellFiles) -> dict[str, Any] | None:
    return read_or_set_aside(files.failure)[0]


def clear_failure(files: CellFiles) -> None:
    try:
        files.failure.unlink(missing_ok=True)
    except OSError:
        pass


def journal(files: CellFiles, event: str, **fields: Any) -> None:
    """Append one line to the cell's attempts (its owners' starts and ends), best effort."""
    owner = me()
    line = {"event": event, "time": time.time(), "host": owner["host"], "pid": owner["pid"],
            "job_id": owner["job_id"], "log": owner["log"], **fields}
    try:
        files.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(files.attempts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def read_attempts(files: CellFiles) -> list[dict[str, Any]]:
    """The cell's journal of starts and ends, oldest first; lines that cannot be read skipped."""
    try:
        text = files.attempts.read_text(errors="replace")
    except OSError:
        return []
    lines = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a crash
            continue
        if isinstance(record, dict):
            lines.append(record)
    return lines
