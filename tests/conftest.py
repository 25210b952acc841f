import pytest


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A cwd of its own, with the store, artifacts and cells inside it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
