"""Dataset kinds by name, so a training config can name its data: `[data] kind = "hdf5"`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset

DATASET_KINDS: dict[str, Callable[..., Dataset]] = {}
SPLITS = ("train", "val", "test")


def register_dataset(kind: str) -> Callable:
    """Decorator: `builder(spec: dict, split: str, base_dir: Path) -> Dataset` registered under `kind`."""

    def wrap(builder: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if kind in DATASET_KINDS:
            raise ValueError(f"dataset kind {kind!r} is already registered")
        DATASET_KINDS[kind] = builder
        return builder

    return wrap


def build_dataset(spec: dict[str, Any], *, split: str = "train", base_dir: str | Path = ".") -> Dataset:
    """The dataset described by a `[data]` table: `kind` picks the builder, the other keys configure it;
    any kind takes `window` (a table for `sciml.data.windows.TimeWindows`).

    Raises:
        ValueError: unknown kind or split (the message lists the valid ones).
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"data spec must be a table with a 'kind' key; kinds: {', '.join(sorted(DATASET_KINDS))}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    kind = spec["kind"]
    if kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; registered kinds: {', '.join(sorted(DATASET_KINDS))}")
    options = {k: v for k, v in spec.items() if k not in ("kind", "window")}
    dataset = DATASET_KINDS[kind](options, split=split, base_dir=Path(base_dir))
    if "window" in spec:  # input/target states cut from trajectories (`sciml.data.windows`)
        from .windows import windowed

        dataset = windowed(dataset, spec["window"])
    return dataset
