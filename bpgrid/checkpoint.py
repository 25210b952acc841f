"""Durable per-cell files: the checkpoint after every epoch and the final result.

Every write goes to a temporary file that is fsynced, renamed over the target and its folder
fsynced, so a reader (or a node after a crash) sees the old file or the new one, never a part of
it. A file that cannot be read anyway (a disk error, a hand edit, a file from a foreign tool) is
never trusted and never deleted: it is moved aside, beside itself, as
``<name>.unreadable-<time>``, and the caller goes on without it. The checkpoint keeps its previous
epoch as ``checkpoint.prev.pt``, so an unreadable checkpoint costs one epoch, not the cell.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

CHECKPOINT_KEYS = ("epoch", "state", "history", "run_id", "train_seconds")


class UnreadableFile(Exception):
    """A cell file that exists but cannot be read; the message names the file."""

    def __init__(self, path: Path, error: BaseException) -> None:
        super().__init__(f"{path}: unreadable ({type(error).__name__}: {error})")
        self.path = path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # a filesystem without directory handles: the rename is all there is
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def set_aside(path: Path) -> Path | None:
    """Move an unreadable file out of the way, kept beside it; None if it is already gone."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    dest = path.with_name(f"{path.name}.unreadable-{stamp}-{os.getpid()}")
    try:
        os.replace(path, dest)
    except FileNotFoundError:  # another process set it aside first
        return None
    return dest


def save_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, None if there is no file; UnreadableFile if it is not a JSON object."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise UnreadableFile(path, err) from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise UnreadableFile(path, err) from None
    if not isinstance(data, dict):
        raise UnreadableFile(path, ValueError(f"not a JSON object: {text[:40]!r}"))
    return data


def load_json(path: Path) -> dict[str, Any] | None:
    """read_json, for files whose loss costs nothing (a summary): None if unreadable too."""
    try:
        return read_json(path)
    except UnreadableFile:
        return None


def previous(path: Path) -> Path:
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the checkpoint, keeping the one it replaces as ``<name>.prev.pt``."""
    tmp = path.with_name(f".{path.name}.next")
    buffer = io.BytesIO()  # serialised first: a full disk is then OSError naming the file, not
    torch.save(state, buffer)  # torch's "unexpected pos" from inside its zip writer
    atomic_write(tmp, lambda f: f.write(buffer.getbuffer()))
    if path.exists():
        os.replace(path, previous(path))
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _read_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad pickle, I/O error: all the same to a reader
        raise UnreadableFile(path, err) from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing or len(state["history"]) != state["epoch"]:
        raise UnreadableFile(path, ValueError(f"not a bpgrid checkpoint (missing {missing})"
                                              if missing else "history and epoch disagree"))
    return state


def load_checkpoint(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The newest readable checkpoint (tensors on CPU), or None; and the files set aside.

    An unreadable ``checkpoint.pt`` is set aside and its previous epoch is tried."""
    aside: list[str] = []
    for candidate in (path, previous(path)):
        try:
            state = _read_checkpoint(candidate)
        except UnreadableFile as err:
            moved = set_aside(candidate)
            aside.append(f"{err} -> {moved}")
            continue
        if state is not None:
            return state, aside
    return None, aside
