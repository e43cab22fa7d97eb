"""RUN_DIR/metrics.jsonl (one JSON object per logged step) and its plot."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, TextIO

from .._io import atomic_path

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (or of RUN_DIR/metrics.jsonl); a torn last line is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    records = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
    return records


class MetricsLog:
    """Appends records to RUN_DIR/metrics.jsonl, flushed per record.

    `resume_step`: keep the records of steps <= resume_step (those before the checkpoint), drop the
    rest (steps a killed run logged after its last checkpoint, which the resumed run repeats).
    """

    def __init__(self, run_dir: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = []
        if resume_step is not None and self.path.is_file():
            keep = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        self._file: TextIO | None = open(self.path, "a")

    def write(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def plot_metrics(run_dir: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Training loss and eval metrics (left) and learning rate (right) against step, as a PNG
    written atomically; default RUN_DIR/metrics.png."""
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    source = run_dir if run_dir.is_file() else run_dir / METRICS_FILE
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file (not a training run directory)")
    records = read_metrics(source)
    if not records:
        raise ValueError(f"{source}: no metrics recorded yet")
    output = Path(output) if output else source.parent / "metrics.png"

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax, ax_lr = fig.subplots(1, 2)
    series = {"loss": "train loss"}
    series.update({k: k.replace("_", " ", 1) for r in records for k in r if k.startswith("val_")})
    positive = True
    for key, label in series.items():
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, label=label, marker="o" if key != "loss" else None, markersize=3)
            positive &= min(values) > 0
    if positive:
        ax.set_yscale("log")
    ax.set(xlabel="step", title="loss")
    ax.legend()
    ax.grid(alpha=0.3)
    lr = [(r["step"], r["lr"]) for r in records if isinstance(r.get("lr"), (int, float))]
    if lr:
        ax_lr.plot(*zip(*lr))
    ax_lr.set(xlabel="step", title="learning rate")
    ax_lr.grid(alpha=0.3)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return output
