"""Plots of a report: error against flip probability, learning curves, alignment angles."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mlflow.tracking import MlflowClient

from bpgrid.plots import plt
from bpgrid.report.render import row_label
from bpgrid.report.table import Table


def flip_prob_plot(table: Table, path: Path) -> Path | None:
    """Experiment B: error against the sign-flip probability, one panel per dataset."""
    series: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for (d, c), cell in table.cells.items():
        method, _, p = c.rpartition("/")
        try:
            prob = float(p)
        except ValueError:
            continue
        if method and cell.value is not None:
            series[d][method].append((prob, cell.value))
    if not series:
        return None
    n = len(series)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), squeeze=False)
    for ax, (d, methods) in zip(axes[0], sorted(series.items()), strict=True):
        for method, points in sorted(methods.items()):
            points.sort()
            ax.plot([p for p, _ in points], [v for _, v in points], marker="o", label=method)
        ax.set_title(row_label(d))
        ax.set_xlabel("flip probability p")
        ax.set_ylabel("error (%)")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _histories(client: MlflowClient, run_id: str, prefix: str) -> dict[str, list]:
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith(prefix)]
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k))
            for k in keys}


def curves(table: Table, uri: str, folder: Path) -> list[Path]:
    """Per dataset: validation error by epoch of each column's best run, and the mean input-
    gradient alignment angle over layers when it was recorded."""
    client = MlflowClient(uri)
    written = []
    for d in table.rows:
        best = {c: table.cells[d, c].best_run for c in table.columns if table.cells[d, c].best_run}
        if not best:
            continue
        for prefix, name, ylabel in (("val_error", "curves", "validation error (%)"),
                                     ("grad_angle/", "alignment", "angle to BP gradient (°)")):
            fig, ax = plt.subplots(figsize=(6, 4))
            drawn = False
            for c, run_id in best.items():
                hist = _histories(client, run_id, prefix)
                if not hist:
                    continue
                epochs = [s for s, _ in next(iter(hist.values()))]
                mean = [sum(h[i][1] for h in hist.values()) / len(hist)
                        for i in range(len(epochs))]
                ax.plot(epochs, mean, label=table.labels[c])
                drawn = True
            if drawn:
                ax.set_title(f"{table.grid}: {row_label(d)}")
                ax.set_xlabel("epoch")
                ax.set_ylabel(ylabel)
                ax.legend(fontsize="x-small", ncol=2)
                fig.tight_layout()
                path = folder / f"{name}_{d}.png"
                fig.savefig(path, dpi=100)
                written.append(path)
            plt.close(fig)
    return written
