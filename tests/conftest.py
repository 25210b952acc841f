import pytest
import torch


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A cwd of its own, with the store, artifacts and cells inside it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def float64():
    """torch's default dtype float64 for the test, restored after it."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
