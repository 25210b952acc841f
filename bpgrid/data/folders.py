"""Class-per-folder image trees, sampled with the paper's protocol (Liao et al. 2016 §5).

A tree is ``<tree>/<class_name>/<image>`` (jpg, png, ppm, pgm, bmp, gif, tif); hidden entries and
other files are ignored. Classes and images are drawn by ``sampling.sample_per_class`` from
``seed``; ``info`` records the chosen classes, per-class counts and every file used (relative to
the tree).

- caltech101: ``root/caltech101/101_ObjectCategories/`` (torchvision's layout, so download works):
  all 102 folders (101 categories + BACKGROUND_Google, the paper's "102 classes"), 30 train /
  10 test per class; the few classes with 31-39 images give all their remaining images to test.
- caltech256_101: ``root/caltech256/256_ObjectCategories/``: 102 classes sampled from the 256
  categories (257.clutter excluded), 30 train / 10 test per class.
- icub: iCubWorld 1.0 categorization protocol: every image of ``root/train/<class>/`` and
  ``root/test/<class>/``, no sampling.
- flowers17: ``root/<class>/``: 17 classes, a seeded 40 train / 20 test per class (the sizes of
  the official train and test sets; the official split files are not read).
- pubfig83_id (85/15), sufr_w_id (10/5), lfw_id (10/5): 80 identities sampled among those with
  enough images, ``root/<identity>/``.
- mit_indoor67: ``root/<class>/`` (the ``Images`` folder of indoorCVPR_09.tar): 67 classes, a seeded
  80 train / 20 test per class (the official TrainImages/TestImages lists are not read).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from bpgrid.data.sampling import Sample, sample_per_class
from bpgrid.data.splits import RawDataset, RawSplit, require
from bpgrid.data.vision import HOW, download_with_torchvision

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".gif", ".tif", ".tiff"}
LAYOUT = "one folder per class holding its images: {tree}/<class_name>/<image>.jpg|png|ppm|..."
SOURCES = {
    "flowers17": "Oxford 17 Category Flower Dataset, https://www.robots.ox.ac.uk/~vgg/data/flowers/17/"
    " (17flowers.tgz: sort images 1-80, 81-160, ... into one folder per class)",
    "pubfig83_id": "PubFig83 (Pinto et al. 2011), http://www.eecs.harvard.edu/~zak/pubfig83/",
    "sufr_w_id": "SUFR-W, the in-the-wild set of SUFR (Leibo, Liao & Poggio 2014), "
    "http://cbmm.mit.edu/sufr",
    "lfw_id": "Labeled Faces in the Wild, http://vis-www.cs.umass.edu/lfw/ (lfw.tgz has one folder "
    "per person)",
    "mit_indoor67": "MIT Indoor Scenes, http://web.mit.edu/torralba/www/indoor.html "
    "(indoorCVPR_09.tar; point root at its Images/ folder)",
    "icub": "iCubWorld 1.0, https://robotology.github.io/iCubWorld/ (the categorization set, with "
    "train/ and test/ folders)",
}


def list_tree(tree: Path) -> dict[str, list[Path]]:
    """Image files of each class folder, sorted by name."""
    return {
        folder.name: sorted(
            f
            for f in folder.iterdir()
            if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
        )
        for folder in sorted(tree.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
    }


def _raw(pairs: list[tuple[object, int]]) -> RawSplit:
    return RawSplit([path for path, _ in pairs], torch.tensor([label for _, label in pairs]).long())


def _files(pairs: list[tuple[object, int]], tree: Path) -> list[str]:
    return [path.relative_to(tree).as_posix() for path, _ in pairs]


def _dataset(sample: Sample, tree: Path, seed: int) -> RawDataset:
    info = sample.info() | {"seed": seed, "tree": str(tree)}
    info |= {"train_files": _files(sample.train, tree), "test_files": _files(sample.test, tree)}
    return RawDataset(_raw(sample.train), _raw(sample.test), len(sample.classes), info=info)


def sampled_tree(
    name: str,
    tree: Path,
    how: str,
    *,
    seed: int,
    n_classes: int | None,
    n_train: int,
    n_test: int,
    exclude: Sequence[str] = (),
    allow_short_test: bool = False,
) -> RawDataset:
    """Read a tree and draw the paper's per-class split from it."""
    require([tree], dataset=name, layout=LAYOUT.format(tree=tree), how=how)
    groups = {c: files for c, files in list_tree(tree).items() if c not in set(exclude)}
    sample = sample_per_class(
        groups,
        n_classes=n_classes,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        where=f"{name} ({tree})",
        unit="images",
        allow_short_test=allow_short_test,
    )
    return _dataset(sample, tree, seed)


def _manual(name: str, download: bool) -> str:
    """How to obtain a dataset that cannot be downloaded automatically."""
    how = f"download it by hand from {SOURCES[name]}"
    if download:
        raise ValueError(f"{name} cannot be downloaded automatically; {how}")
    return how


def caltech101(
    *,
    root: Path,
    download: bool,
    seed: int,
    n_classes: int | None = 102,
    n_train: int = 30,
    n_test: int = 10,
    allow_short_test: bool = True,
) -> RawDataset:
    """Caltech-101: 102 classes (with BACKGROUND_Google), 30 train / 10 test per class."""
    if download:
        download_with_torchvision("Caltech101", root)
    tree = root / "caltech101" / "101_ObjectCategories"
    return sampled_tree(
        "caltech101",
        tree,
        HOW,
        seed=seed,
        n_classes=n_classes,
        n_train=n_train,
        n_test=n_test,
        allow_short_test=allow_short_test,
    )


def caltech256_101(
    *,
    root: Path,
    download: bool,
    seed: int,
    n_classes: int = 102,
    n_train: int = 30,
    n_test: int = 10,
    exclude: Sequence[str] = ("257.clutter",),
) -> RawDataset:
    """Caltech-256-101: 102 classes sampled from Caltech-256, 30 train / 10 test per class."""
    if download:
        download_with_torchvision("Caltech256", root)
    tree = root / "caltech256" / "256_ObjectCategories"
    return sampled_tree(
        "caltech256_101",
        tree,
        HOW,
        seed=seed,
        n_classes=n_classes,
        n_train=n_train,
        n_test=n_test,
        exclude=exclude,
    )


def icub(*, root: Path, download: bool, seed: int) -> RawDataset:
    """iCubWorld 1.0 categorization: every image of the given train/ and test/ folders."""
    how = _manual("icub", download)
    trees = [root / "train", root / "test"]
    require(trees, dataset="icub", layout=LAYOUT.format(tree=f"{root}/{{train,test}}"), how=how)
    train, test = (list_tree(tree) for tree in trees)
    if sorted(train) != sorted(test):
        raise ValueError(
            f"icub: class folders differ between {trees[0]} and {trees[1]}: "
            f"{sorted(set(train) ^ set(test))}"
        )
    for tree, groups in zip(trees, (train, test), strict=True):
        empty = [c for c, files in groups.items() if not files]
        if empty:
            raise ValueError(f"icub ({tree}): class {empty[0]!r} has 0 images, 1 needed")
    classes = sorted(train)
    pairs = [
        [(f, label) for label, c in enumerate(classes) for f in groups[c]]
        for groups in (train, test)
    ]
    return _dataset(Sample(classes, *pairs), root, seed)


def _manual_tree(name: str, doc: str, classes: int, train: int, test: int):
    """The loader of a class-per-folder dataset downloaded by hand, with the paper's counts as
    its option defaults (the registry reads a loader's options from its signature)."""

    def load(*, root: Path, download: bool, seed: int, n_classes: int | None = classes,
             n_train: int = train, n_test: int = test) -> RawDataset:
        return sampled_tree(name, root, _manual(name, download), seed=seed,
                            n_classes=n_classes, n_train=n_train, n_test=n_test)

    load.__name__ = load.__qualname__ = name
    load.__doc__ = doc
    return load


flowers17 = _manual_tree(
    "flowers17", "Oxford Flowers-17: 17 classes, seeded 40 train / 20 test per class.", 17, 40, 20)
pubfig83_id = _manual_tree(
    "pubfig83_id", "PubFig83-ID: 80 random identities, 85 train / 15 test per identity.",
    80, 85, 15)
sufr_w_id = _manual_tree(
    "sufr_w_id", "SUFR-W-ID: 80 random identities, 10 train / 5 test per identity.", 80, 10, 5)
lfw_id = _manual_tree(
    "lfw_id", "LFW-ID: 80 random identities, 10 train / 5 test per identity.", 80, 10, 5)
mit_indoor67 = _manual_tree(
    "mit_indoor67", "MIT Indoor-67 (Scene67): 67 classes, 80 train / 20 test per class.",
    67, 80, 20)
