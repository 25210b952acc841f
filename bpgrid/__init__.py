"""bpgrid: asymmetric-backpropagation experiments at scale."""

from pathlib import Path

__version__ = "0.1.0"
CONF = Path(__file__).resolve().parent.parent / "conf"  # the Hydra configs


def __getattr__(name: str):
    """``bpgrid.results`` (pandas, MLflow and Hydra are imported when it is first used)."""
    if name == "results":
        from bpgrid.report.results import results
        return results
    raise AttributeError(f"module 'bpgrid' has no attribute {name!r}")
