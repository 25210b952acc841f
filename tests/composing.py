"""Composing the real Hydra configs in tests (importable: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir

CONF = Path(__file__).resolve().parent.parent / "conf"


def compose_config(overrides: list[str], config_name: str = "config"):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def local_overrides(root: Path) -> list[str]:
    """Store, artifacts and cells inside ``root``; quiet and on the CPU."""
    return [f"tracking.uri=sqlite:///{root}/mlflow.db", f"tracking.artifacts={root}/artifacts",
            f"cells_dir={root}/cells", "progress=never", "device=cpu"]
