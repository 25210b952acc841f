"""Plots written as PNG files (matplotlib without a display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curve(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """Train and validation error (or loss, for regression) against epoch."""
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if history and "train_error" in history[0]:
        ax.plot(epochs, [h["train_error"] for h in history], label="train error")
        ax.set_ylabel("error (%)")
    else:
        ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
        ax.set_ylabel("mean squared error")
    ax.plot(epochs, [h["val_error"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
