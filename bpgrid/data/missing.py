"""The missing-data check: every dataset a command needs whose files are not where it looks.

It runs before any work (a sweep checks its grid before composing the cells, in a dry run too;
``bpgrid.train`` checks its cell) and lists every missing dataset at once, sorted by name and
root, each with the layout its loader expects and how to get it: ``dataset.download=true`` where
torchvision can fetch it, else by hand and from where.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpgrid.data.registry import DatasetDef, default_root, get_dataset


@dataclass(frozen=True, order=True)
class Missing:
    """A dataset whose files are not under the root a cell would read them from."""

    name: str
    root: Path

    @property
    def dataset(self) -> DatasetDef:
        return get_dataset(self.name)

    def line(self) -> str:
        """The dataset, where its files should be, and how to get them."""
        d = self.dataset
        how = ("dataset.download=true fetches it with torchvision" if d.downloadable
               else f"it cannot be downloaded; get it by hand: {d.obtain}")
        return f"{self.name}: no files at {self.root}; expected {self.root}/{d.layout}; {how}"


class MissingData(FileNotFoundError):
    """Datasets whose files are missing; the message lists each with its layout and source."""

    def __init__(self, missing: list[Missing]) -> None:
        self.missing = missing
        some = f"{len(missing)} dataset{'s' if len(missing) > 1 else ''}"
        super().__init__("\n".join([
            f"{some} missing, so nothing was started:",
            *(f"  {m.line()}" for m in missing),
            "Put the files there, or point dataset.root=PATH at them.",
        ]))

    def __str__(self) -> str:
        return str(self.args[0])


def missing(datasets: Iterable[Mapping[str, Any]]) -> list[Missing]:
    """The datasets among these resolved ``dataset`` configs whose files are not there and that
    will not be downloaded, each once, sorted by name and root."""
    needed = set()
    for ds in datasets:
        d = get_dataset(ds["name"])
        if not d.embedded and not (ds.get("download") and d.downloadable):
            root = default_root(d.name) if ds.get("root") is None else Path(ds["root"])
            needed.add(Missing(d.name, root.absolute()))
    return sorted(m for m in needed if not m.dataset.has_files(m.root))


def check_data(datasets: Iterable[Mapping[str, Any]]) -> None:
    """Raise MissingData listing every dataset of these configs whose files are missing."""
    lost = missing(datasets)
    if lost:
        raise MissingData(lost)
