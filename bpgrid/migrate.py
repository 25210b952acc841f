"""Cells made while ``dataset.root`` and ``dataset.download`` were factors, under their new id.

Such a cell's folder is named by its legacy id (``config.legacy_cell_id``), which depends on the
root as it was typed and on the download flag. A cell whose new folder does not exist looks for
a legacy one under the config's root (as given, with and without a trailing slash) and either
download flag; if it finds one, the cell's MLflow runs are retagged (``cell_id`` the new id,
``legacy_cell_id`` the old one, the run renamed) and then the folder is renamed. Both steps can
be repeated, so a kill in between loses nothing. Cells made under another root are found by
running the sweep once with that root: ``grid.dry_run=true`` migrates them without training.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bpgrid.config import cell_id, legacy_cell_id


def legacy_ids(c: dict[str, Any]) -> list[str]:
    """The ids this cell may have had, most likely first."""
    root = c["dataset"].get("root")
    roots = [root] if not isinstance(root, str) else list(dict.fromkeys(
        [root, root.rstrip("/") or "/", root.rstrip("/") + "/"]))
    download = bool(c["dataset"].get("download"))
    ids = [legacy_cell_id({**c, "dataset": {**c["dataset"], "root": r, "download": d}})
           for d in (download, not download) for r in roots]
    return [i for i in dict.fromkeys(ids) if i != cell_id(c)]


def find_legacy(c: dict[str, Any]) -> Path | None:
    """The folder of this cell under a legacy id, the one with a result first; None if none."""
    cells = Path(c["cells_dir"])
    found = [cells / i for i in legacy_ids(c) if (cells / i).is_dir()]
    finished = [f for f in found if (f / "result.json").exists()]
    return (finished or found or [None])[0]


def migrate(c: dict[str, Any], retag: Callable[[str, str], Any]) -> str | None:
    """Move the cell's legacy folder to its new id, retagging its runs first with
    ``retag(old, new)``; the legacy id, or None when there was nothing to move."""
    new = Path(c["cells_dir"]) / cell_id(c)
    if new.exists():
        return None
    old = find_legacy(c)
    if old is None:
        return None
    retag(old.name, new.name)
    try:
        os.rename(old, new)
    except OSError:  # moved meanwhile by another process, or the new folder appeared
        if not new.exists():
            raise
    return old.name
