"""bpgrid/checkpoint.py: durable writes, and unreadable files set aside rather than trusted."""

import json

import pytest
import torch

from bpgrid.checkpoint import (
    UnreadableFile,
    atomic_write,
    load_checkpoint,
    previous,
    read_json,
    save_checkpoint,
    save_json,
)


def state(epoch: int) -> dict:
    return {"epoch": epoch, "state": {"w": torch.full((3,), float(epoch))},
            "history": [{"epoch": e} for e in range(1, epoch + 1)], "run_id": "r",
            "train_seconds": 1.0}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "result.json"
    save_json(path, {"status": "done"})

    def broken(f):
        f.write(b"{half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, broken)
    assert json.loads(path.read_text()) == {"status": "done"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_a_half_written_result_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"status": "do')
    with pytest.raises(UnreadableFile, match=f"{path}: unreadable"):
        read_json(path)
    path.write_text("[1, 2]")
    with pytest.raises(UnreadableFile, match="not a JSON object"):
        read_json(path)
    assert read_json(tmp_path / "none.json") is None


def test_the_checkpoint_keeps_its_previous_epoch(tmp_path):
    path = tmp_path / "checkpoint.pt"
    for epoch in (1, 2, 3):
        save_checkpoint(path, state(epoch))
    assert load_checkpoint(path)[0]["epoch"] == 3
    assert torch.load(previous(path), weights_only=True)["epoch"] == 2


@pytest.mark.parametrize("damage", ["empty", "truncated", "foreign"])
def test_an_unreadable_checkpoint_is_set_aside_and_the_previous_epoch_used(tmp_path, damage):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, state(1))
    save_checkpoint(path, state(2))
    data = path.read_bytes()
    if damage == "foreign":
        torch.save({"model": torch.zeros(2)}, path)
    else:
        path.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    loaded, aside = load_checkpoint(path)
    assert loaded["epoch"] == 1 and len(aside) == 1
    assert aside[0].startswith(f"{path}: unreadable")
    kept = list(tmp_path.glob("checkpoint.pt.unreadable-*"))
    assert len(kept) == 1 and str(kept[0]) in aside[0]  # kept beside it, never deleted
    assert not path.exists()


def test_with_no_readable_checkpoint_the_cell_starts_from_scratch(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, state(1))
    save_checkpoint(path, state(2))
    path.write_bytes(b"x")
    previous(path).write_bytes(b"")
    loaded, aside = load_checkpoint(path)
    assert loaded is None and len(aside) == 2
    assert load_checkpoint(tmp_path / "none.pt") == (None, [])
