"""Normalisation statistics: streaming mean/std over the train split, kept next to the data.

Statistics are computed in one streaming pass (Chan et al.'s pairwise update of count, mean and sum of
squared deviations, in float64, one block of samples at a time), so a file larger than memory is fine.
`std` is the population standard deviation (numpy's default, ddof=0). Either one scalar per field, or
one value per channel along a chosen axis of the item.

The statistics live in `<data file>.stats.json` (e.g. `darcy.h5.stats.json`), written atomically (a
temporary file beside it, then a rename: no reader ever sees a half-written file). The file holds one
entry per (dataset class, field, data source, channel axis, exact train indices), and records the data
file's size and modification time: entries are reused only while those match, so regenerating the
data invalidates them. A stats file that cannot be parsed is ignored and rewritten; one that cannot be
written (a read-only data folder) only costs a warning and a recomputation next time.

A model trained on normalised fields carries the statistics with it: `normalizer_document(dataset)`
is the JSON document a trained model's directory holds as `normalizer.json` (`write_normalizer`;
`sciml train` writes it when it exports a model, the neural-operator solvers read it):

    {"format": "sciml-normalizer", "version": 1, "input": "x", "target": "y",
     "fields": {"x": {"mean": [...], "std": [...], "channel_axis": null | -3 ...}, "y": {...}}}
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._io import atomic_path

NORMALIZER = "normalizer.json"
NORMALIZER_FORMAT = "sciml-normalizer"
STATS_SUFFIX = ".stats.json"
FORMAT = "sciml-normalization-stats"
VERSION = 1


def stats_path_for(data_path: str | os.PathLike) -> Path:
    """`<data file>.stats.json` beside the data file."""
    p = Path(data_path)
    return p.with_name(p.name + STATS_SUFFIX)


def file_identity(path: str | os.PathLike) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def entry_key(signature: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:24]


def indices_digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(indices, dtype="<i8").tobytes()).hexdigest()[:24]


class RunningStats:
    """Streaming count/mean/M2 per channel (or one scalar), merged block by block in float64.

    `channel_axis` counts from the end of the item (negative, e.g. -3 for (C, X, Y) items) so that
    blocks with extra leading axes (several samples at once) reduce the same way.
    """

    def __init__(self, channel_axis: int | None = None):
        if channel_axis is not None and channel_axis >= 0:
            raise ValueError("RunningStats takes a negative channel axis (counted from the end)")
        self.channel_axis = channel_axis
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def update(self, block: np.ndarray) -> None:
        a = np.asarray(block)
        if np.iscomplexobj(a):
            raise ValueError("normalisation statistics need real data, got a complex array")
        a = a.astype(np.float64, copy=False)
        if self.channel_axis is None:
            a = a.reshape(1, -1)
        else:
            if a.ndim < -self.channel_axis:
                raise ValueError(f"channel axis {self.channel_axis} is out of range for an array of shape {a.shape}")
            a = np.moveaxis(a, self.channel_axis, 0).reshape(a.shape[self.channel_axis], -1)
        n_b = a.shape[1]
        if n_b == 0:
            return
        mean_b = a.mean(axis=1)
        m2_b = ((a - mean_b[:, None]) ** 2).sum(axis=1)
        if self.mean is None:
            self.count, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        if mean_b.shape != self.mean.shape:
            raise ValueError(f"channel count changed between blocks: {self.mean.shape[0]} then {mean_b.shape[0]}")
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.count * n_b / n)
        self.count = n

    def result(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(mean, std, count): arrays of one value per channel (shape (1,) without a channel axis)."""
        if self.mean is None:
            raise ValueError("no data seen: cannot compute normalisation statistics of an empty split")
        return self.mean.copy(), np.sqrt(self.m2 / self.count), self.count


def load_entries(stats_path: Path, identity: dict[str, int]) -> dict[str, Any]:
    """The entries of a stats file if it exists, parses and belongs to this version of the data; else {}."""
    try:
        with open(stats_path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        warnings.warn(f"{stats_path}: unreadable normalisation statistics ({err}); recomputing", stacklevel=3)
        return {}
    if (not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION
            or doc.get("source") != identity or not isinstance(doc.get("entries"), dict)):
        return {}
    return doc["entries"]


def save_entries(stats_path: Path, identity: dict[str, int], data_name: str, entries: dict[str, Any]) -> bool:
    """Write the stats file atomically; returns False (with a warning) if it cannot be written."""
    doc = {"format": FORMAT, "version": VERSION, "data": data_name, "source": identity, "entries": entries}
    try:
        with atomic_path(stats_path) as tmp:
            with open(tmp, "w") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
                f.write("\n")
    except OSError as err:
        warnings.warn(f"{stats_path}: cannot write normalisation statistics ({err}); they will be recomputed next time",
                      stacklevel=3)
        return False
    return True


def normalises(dataset: Any, *aliases: str) -> bool:
    """Whether `dataset` (a sciml `FieldDataset`, with `.stats`) normalises any of the fields `aliases`."""
    stats = getattr(dataset, "stats", None)
    return isinstance(stats, Mapping) and any(alias in stats for alias in aliases)


def normalizer_document(dataset: Any, input: str = "x", target: str = "y") -> dict[str, Any]:
    """The `normalizer.json` document (module docstring) of a dataset with `.stats` (a sciml
    `FieldDataset`): the statistics of the fields `input` and `target` that it normalises (others left out)."""
    stats = getattr(dataset, "stats", None)
    if not isinstance(stats, Mapping):
        raise TypeError(f"expected a sciml dataset with normalisation statistics (.stats), got {type(dataset).__name__}")
    fields = {}
    for alias in (input, target):
        if alias in stats:
            s = stats[alias]
            fields[alias] = {"mean": np.asarray(s["mean"], dtype=np.float64).ravel().tolist(),
                             "std": np.asarray(s["std"], dtype=np.float64).ravel().tolist(),
                             "channel_axis": s.get("channel_axis")}
    return {"format": NORMALIZER_FORMAT, "version": 1, "input": input, "target": target, "fields": fields}


def write_normalizer(directory: str | os.PathLike, document: Mapping[str, Any]) -> Path:
    """Write `directory/normalizer.json` atomically; returns its path."""
    path = Path(directory) / NORMALIZER
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n")
    return path
