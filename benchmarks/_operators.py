"""Shared by the trained-operator benchmarks (darcy_operators.py, ns_operators.py): per-problem errors, the
error/time table, and validation curves of `sciml train` runs against training wall time."""
from __future__ import annotations

from pathlib import Path

import torch


def rel_l2(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-problem relative L2 error `(B,)` over everything after the first axis."""
    return (pred - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)


def print_error_table(rows: list, count: int, per: str = "problem", digits: int = 2) -> None:
    """A markdown table of `(method, per-problem relative errors (tensor), total seconds)` rows: the mean and
    max error and the milliseconds per problem (`count` problems per timed call)."""
    print(f"\n| method | mean rel. L2 | max rel. L2 | ms per {per} |")
    print("|---|---|---|---|")
    for name, e, t in rows:
        print(f"| {name} | {float(e.mean()):.2e} | {float(e.max()):.2e} | {1e3 * t / count:.{digits}f} |")


def plot_validation_curves(chains: list[str], metric: str, ylabel: str, title: str, output: Path) -> None:
    """`val_<metric>` against training wall time, one line per chain "RUN[,RUN...]" of `sciml train` run
    directories (each later run continuing from the one before: its times follow the previous run's end)."""
    from matplotlib.figure import Figure

    from sciml.plots import save_figure
    from sciml.training import read_metrics

    key = f"val_{metric}"
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for chain in chains:
        runs, points, offset = [Path(r) for r in chain.split(",")], [], 0.0
        for run in runs:
            records = read_metrics(run / "metrics.jsonl")
            points += [((offset + r["time"]) / 60, r[key]) for r in records if key in r]
            offset += records[-1]["time"]
        label = runs[0].name + (f" + {len(runs) - 1} more stage(s)" if len(runs) > 1 else "")
        ax.semilogy(*zip(*points), marker="o", markersize=3, label=label)
    ax.set(xlabel="training wall time (min)", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    print(f"wrote {save_figure(fig, output)}")
