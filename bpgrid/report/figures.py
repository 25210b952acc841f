"""Plots of a report: error against flip probability, learning curves, alignment angles."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from bpgrid.plots import plt
from bpgrid.report.records import metric_history
from bpgrid.report.table import Table


def flip_prob_plot(table: Table, path: Path) -> Path | None:
    """Experiment B: error against the sign-flip probability, one panel per dataset."""
    points = table.cells.value.dropna().reset_index()
    parts = points.column.str.rpartition("/")  # method/flip_prob
    points = points.assign(method=parts[0], prob=pd.to_numeric(parts[2], errors="coerce"))
    points = points[(points.method != "") & points.prob.notna()]
    if points.empty:
        return None
    datasets = [d for d in table.rows if d in set(points.dataset)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.2 * len(datasets), 3), squeeze=False)
    for ax, d in zip(axes[0], datasets, strict=True):
        for name, series in points[points.dataset == d].groupby("method"):
            series = series.sort_values("prob")
            ax.plot(series.prob, series.value, marker="o", label=name)
        ax.set_title(table.row_labels[d])
        ax.set_xlabel("flip probability p")
        ax.set_ylabel("error (%)")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _curve(client: MlflowClient, run_id: str, prefix: str) -> pd.Series:
    """The mean by epoch of the run's metrics named ``prefix...``; empty when it has none."""
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith(prefix)]
    return metric_history(client, run_id, keys).mean(axis=1)


def curve_labels(table: Table, dataset: str) -> dict[str, str]:
    """Each column's best run on the dataset, labelled by its method and LR scale."""
    best = table.cells.xs(dataset, level="dataset").dropna(subset=["best_run"])
    return {c: f"{table.column_labels[c]} (LR x{scale:g})"
            for c, scale in best.best_lr_scale.items()}


def curves(table: Table, uri: str, folder: Path) -> list[Path]:
    """Per dataset: validation error by epoch of each column's best run (its method and LR
    scale in the legend), and the mean input-gradient alignment angle over layers when it was
    recorded."""
    client = MlflowClient(uri)
    written = []
    for d in table.rows:
        best = table.cells.best_run.xs(d, level="dataset").dropna()
        if best.empty:
            continue
        labels = curve_labels(table, d)
        for prefix, name, ylabel in (("val_error", "curves", "validation error (%)"),
                                     ("grad_angle/", "alignment", "angle to BP gradient (°)")):
            fig, ax = plt.subplots(figsize=(6, 4))
            drawn = False
            for c, run_id in best.items():
                curve = _curve(client, run_id, prefix)
                if not curve.empty:
                    ax.plot(curve.index, curve.to_numpy(), label=labels[c])
                    drawn = True
            if drawn:
                ax.set_title(f"{table.grid}: {table.row_labels[d]}, each method at its best "
                             f"LR scale")
                ax.set_xlabel("epoch")
                ax.set_ylabel(ylabel)
                ax.legend(fontsize="x-small", ncol=2)
                fig.tight_layout()
                path = folder / f"{name}_{d}.png"
                fig.savefig(path, dpi=100)
                written.append(path)
            plt.close(fig)
    return written
