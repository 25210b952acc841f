import numpy as np
import pytest
import torch
from PIL import Image

from bpgrid.data import prepare
from bpgrid.data.prepare import (
    Preparation,
    StreamingSplit,
    channel_stats,
    convert_channels,
    decode_image,
    fits,
    prepare_splits,
)
from bpgrid.data.splits import RawSplit, Split


def test_grey_to_rgb_repeats_and_rgb_to_grey_weighs_luminance():
    grey = torch.rand(2, 1, 3, 3)
    assert torch.equal(convert_channels(grey, 3), grey.expand(-1, 3, -1, -1))
    rgb = torch.zeros(1, 3, 1, 1)
    rgb[0, :, 0, 0] = torch.tensor([1.0, 0.5, 0.0])
    assert convert_channels(rgb, 1).item() == pytest.approx(0.299 + 0.587 / 2)
    with pytest.raises(ValueError, match="cannot convert 4 channels to 3"):
        convert_channels(torch.zeros(1, 4, 2, 2), 3)


def test_channel_stats_over_chunks_and_constant_channel():
    x = torch.randn(10, 2, 4, 4) * torch.tensor([3.0, 0.0]).view(1, 2, 1, 1) + 5
    mean, std = channel_stats([x[:3], x[3:]])
    torch.testing.assert_close(mean, x.mean((0, 2, 3)))
    assert std[0] == pytest.approx(x[:, 0].std(correction=0).item(), rel=1e-5)
    assert std[1] == 1.0  # constant channel: left unscaled rather than divided by zero


def test_uint8_scaled_resized_and_standardized():
    raw = torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)
    preparation = Preparation((2, 2), 3, mean=torch.tensor([0.5] * 3), std=torch.tensor([0.25] * 3))
    torch.testing.assert_close(preparation(raw), torch.full((1, 3, 2, 2), 2.0))


def test_fits_counts_float32_bytes():
    assert fits(256, (1, 32, 32), 1) and not fits(257, (1, 32, 32), 1)


def test_decode_image_modes(tmp_path):
    Image.new("RGBA", (5, 4), (10, 20, 30, 0)).save(tmp_path / "a.png")
    Image.new("P", (5, 4), 7).save(tmp_path / "b.gif")
    rgb = decode_image(tmp_path / "a.png", 3)
    assert rgb.shape == (3, 4, 5) and rgb.dtype == torch.uint8
    assert rgb[:, 0, 0].tolist() == [10, 20, 30]
    assert decode_image(tmp_path / "b.gif", 1).shape == (1, 4, 5)
    (tmp_path / "c.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="c.png: unreadable image"):
        decode_image(tmp_path / "c.png", 3)


def test_streaming_equals_memory_across_chunk_boundaries(monkeypatch):
    monkeypatch.setattr(prepare, "CHUNK", 3)
    generator = torch.Generator().manual_seed(0)
    raw = RawSplit(
        torch.randint(0, 256, (10, 3, 5, 5), generator=generator, dtype=torch.uint8),
        torch.arange(10),
    )
    test = RawSplit(raw.x[:4], raw.y[:4])
    results = [
        prepare_splits(
            raw, test, Preparation((4, 4)), standardize=True, max_memory_mb=mb, device="cpu"
        )
        for mb in (1, 0)
    ]
    (train, _, shape, info), (stream, stream_test, _, stream_info) = results
    assert isinstance(train, Split) and isinstance(stream, StreamingSplit)
    assert shape == (3, 4, 4) and info["streamed"] == {"train": False, "test": False}
    assert stream_info["streamed"] == {"train": True, "test": True}
    assert info["mean"] == stream_info["mean"] and info["std"] == stream_info["std"]
    streamed = torch.stack([stream[i][0] for i in range(10)])
    torch.testing.assert_close(streamed, train.x, atol=1e-6, rtol=0)
    assert torch.equal(stream_test[2][0], streamed[2])


def test_no_standardization_keeps_values():
    raw = RawSplit(torch.from_numpy(np.arange(6, dtype=np.float32).reshape(3, 2)), torch.zeros(3))
    train, _, shape, info = prepare_splits(
        raw, raw, Preparation(), standardize=False, max_memory_mb=1, device="cpu"
    )
    assert torch.equal(train.x, raw.x) and shape == (2,) and "mean" not in info
