"""Raw splits to network inputs: resize, match channels, standardize with train statistics.

Liao et al. (2016) §5: "All images are resized to fit the network if necessary". Pixels are scaled
to [0, 1], resized (bilinear, antialiased), converted grey<->RGB, then standardized per channel with
the mean/std of the *train* split, applied to both splits. A split that fits in ``max_memory_mb``
becomes a ``Split`` of tensors; a bigger one a ``StreamingSplit`` doing the same steps per item.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from bpgrid.data.splits import RawSplit, Split

CHUNK = 256  # items prepared at a time
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's convert("L")


def decode_image(path: Path, channels: int) -> Tensor:
    """Read one image file as uint8 (C, H, W), C = 1 (grey) or 3 (RGB); unreadable -> ValueError."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"{path}: unreadable image ({err})") from err
    tensor = torch.from_numpy(array.copy())
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def convert_channels(x: Tensor, channels: int) -> Tensor:
    """Grey -> RGB by repetition, RGB -> grey by luminance; x is (B, C, H, W)."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3 and channels == 1:
        weights = torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * weights).sum(1, keepdim=True)
    raise ValueError(f"cannot convert {x.shape[1]} channels to {channels}")


@dataclass
class Preparation:
    """The per-item steps shared by the in-memory and the streaming path."""

    image_size: tuple[int, int] | None = None
    channels: int | None = None
    mean: Tensor | None = None  # (C,), set once train statistics are known
    std: Tensor | None = None

    def __call__(self, raw: Tensor) -> Tensor:
        """Prepare a batch: (B, C, H, W) uint8/float images, or (B, ...) float vectors/signals."""
        x = raw.float() / 255 if raw.dtype == torch.uint8 else raw.float()
        if self.image_size is not None and tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", antialias=True)
        if self.channels is not None:
            x = convert_channels(x, self.channels)
        if self.mean is not None:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            x = (x - self.mean.view(shape)) / self.std.view(shape)
        return x

    def rows(self, raw: RawSplit, start: int, stop: int, item_shape: tuple | None = None) -> Tensor:
        """Prepared items start..stop-1; images of a shape other than item_shape are an error."""
        if isinstance(raw.x, Tensor):
            return self(raw.x[start:stop])
        items = []
        for path in raw.x[start:stop]:
            item = self(decode_image(path, self.channels or 3)[None])
            if item_shape is not None and tuple(item.shape[1:]) != tuple(item_shape):
                raise ValueError(
                    f"{path}: prepared shape {tuple(item.shape[1:])} differs from {item_shape} "
                    "of the first image; pass image_size=(H, W) to resize all images"
                )
            items.append(item)
        return torch.cat(items)

    def chunks(self, raw: RawSplit, item_shape: tuple) -> Iterator[Tensor]:
        """All prepared items, CHUNK at a time."""
        for start in range(0, len(raw), CHUNK):
            yield self.rows(raw, start, start + CHUNK, item_shape)


class StreamingSplit(Dataset):
    """A split too big for memory: each item is read and prepared on access (CPU tensors)."""

    def __init__(self, raw: RawSplit, preparation: Preparation, item_shape: tuple):
        self.raw, self.preparation, self.item_shape = raw, preparation, item_shape
        self.targets = raw.y

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x = self.preparation.rows(self.raw, index, index + 1, self.item_shape)[0]
        return x, self.raw.y[index]


def channel_stats(chunks: Iterable[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-channel (dim 1) mean and std over all other dims; a constant channel gets std 1."""
    total = squares = None
    count = 0
    for chunk in chunks:
        x = chunk.double()
        dims = [0, *range(2, x.ndim)]
        total = x.sum(dims) + (0 if total is None else total)
        squares = (x * x).sum(dims) + (0 if squares is None else squares)
        count += x.numel() // x.shape[1]
    mean = total / count
    std = (squares / count - mean**2).clamp_min(0).sqrt()
    std[std < 1e-6] = 1.0
    return mean.float(), std.float()


def fits(n_items: int, item_shape: tuple, max_memory_mb: float) -> bool:
    """Whether n float32 items fit in the memory budget."""
    return n_items * int(np.prod(item_shape)) * 4 <= max_memory_mb * 2**20


def materialize(raw: RawSplit, preparation: Preparation, item_shape: tuple) -> Tensor:
    """All prepared items of a split as one float32 tensor (N, *item_shape)."""
    out = torch.empty((len(raw), *item_shape))
    for start, chunk in zip(
        range(0, len(raw), CHUNK), preparation.chunks(raw, item_shape), strict=True
    ):
        out[start : start + len(chunk)] = chunk
    return out


def prepare_splits(
    train: RawSplit,
    test: RawSplit,
    preparation: Preparation,
    *,
    standardize: bool,
    max_memory_mb: float,
    device: str | torch.device,
) -> tuple[Split | StreamingSplit, Split | StreamingSplit, tuple, dict]:
    """Prepare both splits with train-split statistics; returns train, test, input shape, info."""
    item_shape = tuple(preparation.rows(train, 0, 1).shape[1:])
    train_fits = fits(len(train), item_shape, max_memory_mb)
    if train_fits:
        train_x = materialize(train, preparation, item_shape)
        chunks = (train_x[s : s + CHUNK] for s in range(0, len(train_x), CHUNK))
    else:
        chunks = preparation.chunks(train, item_shape)
    info = {"streamed": {"train": not train_fits}}
    if standardize:
        preparation.mean, preparation.std = channel_stats(chunks)
        info |= {"mean": preparation.mean.tolist(), "std": preparation.std.tolist()}
    if train_fits:
        if standardize:
            shape = (1, -1) + (1,) * (train_x.ndim - 2)
            train_x.sub_(preparation.mean.view(shape)).div_(preparation.std.view(shape))
        train_out = Split(train_x.to(device), train.y.to(device))
    else:
        train_out = StreamingSplit(train, preparation, item_shape)
    test_fits = fits(len(test), item_shape, max_memory_mb)
    info["streamed"]["test"] = not test_fits
    if test_fits:
        test_out = Split(materialize(test, preparation, item_shape).to(device), test.y.to(device))
    else:
        test_out = StreamingSplit(test, preparation, item_shape)
    return train_out, test_out, item_shape, info
