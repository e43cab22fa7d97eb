"""`HDF5Dataset`: samples along axis 0 of HDF5 datasets, read lazily one sample at a time.

```python
ds = HDF5Dataset("darcy.h5", fields={"x": "a", "y": "u"}, split="train", normalize=["x", "y"])
ds[0]  # {"x": a[i0], "y": u[i0]} as float32 tensors, normalised with the train statistics
```

or from a training config (`path` relative to the config's folder):

```toml
[data]
kind = "hdf5"
path = "data/darcy.h5"
fields = {x = "a", y = "u"}
splits = [0.8, 0.1, 0.1]       # or {train = [0, 800], val = [800, 900], test = [900, 1000]}
normalize = ["x", "y"]
```

Every named dataset must hold the samples along its first axis, the same number in all of them
(datasets may be nested: `"group/u"`; chunked and compressed datasets read chunk by chunk as usual).
The file is opened on first use in each process, never pickled, so DataLoader workers each read
their own samples.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .base import DataError, FieldDataset, first_names, make_builder
from .registry import register_dataset

BLOCK_BYTES = 32 * 2**20  # statistics pass: read about this much per block of consecutive samples


def open_h5(path: Path, what: str = "HDF5") -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataError(path, "", f"cannot open as {what} ({err})") from None


def dataset_names(group: Any, limit: int = 200) -> list[str]:
    """Paths of the (numeric or not) datasets under an h5py group, at most `limit`."""
    import h5py

    names: list[str] = []

    def visit(name: str, obj: Any) -> Any:
        if isinstance(obj, h5py.Dataset):
            names.append(name)
        return True if len(names) >= limit else None

    group.visititems(visit)
    return names


def numeric_dataset(f: Any, path: Any, alias: str, var: str) -> Any:
    """The h5py dataset `var` of the open file `f`, checked to be a numeric array with samples along
    axis 0; `DataError` naming `fields.<alias>` and listing the file's datasets otherwise."""
    import h5py

    obj = f.get(var)
    if not isinstance(obj, h5py.Dataset):
        raise DataError(path, f"fields.{alias}", f"no dataset {var!r} in the file; expected one of "
                                                 f"its datasets: {first_names(dataset_names(f))}")
    if obj.ndim < 1 or obj.dtype.kind not in "biufc":
        raise DataError(path, f"fields.{alias}", f"dataset {var!r} (shape {obj.shape}, dtype {obj.dtype}) "
                                                 "is not a numeric array with samples along axis 0")
    return obj


def check_counts(file: Any, fields: dict[str, str], counts: dict[str, int], where: str) -> int:
    """The common sample count of all fields, or a `DataError` listing each field's count."""
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{a} ({fields[a]!r}) {n}" for a, n in counts.items())
        raise DataError(file, "fields", f"fields have different sample counts: {listing}; expected the same "
                                        f"number of samples along {where}")
    return next(iter(counts.values()))


def consecutive_runs(indices: np.ndarray, max_len: int) -> Iterator[tuple[int, int]]:
    """[start, stop) runs of consecutive values in sorted `indices`, each at most `max_len` long."""
    if len(indices) == 0:
        return
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    for run in np.split(indices, breaks):
        for k in range(0, len(run), max_len):
            part = run[k:k + max_len]
            yield int(part[0]), int(part[-1]) + 1


class _Handle:
    def __init__(self, file: Any, dsets: dict[str, Any]):
        self.file, self.dsets = file, dsets

    def close(self) -> None:
        self.file.close()


class HDF5Dataset(FieldDataset):
    """Items `{alias: dataset[i]}` from datasets of one HDF5 file, samples along axis 0.

    See `FieldDataset` for split, shuffle, seed, normalize, channel_axis, stats_file and dtype.

    Raises:
        FileNotFoundError: no such file.
        ValueError (`DataError`): not HDF5, a missing or non-numeric dataset (the message lists the
            file's datasets), different sample counts, bad splits or options.
    """

    kind = "hdf5"

    def __init__(self, path: str | Path, fields: Any, *, split: str = "train", splits: Any = (0.8, 0.1, 0.1),
                 shuffle: bool = False, seed: int = 0, normalize: Any = None, channel_axis: Any = None,
                 stats_file: Any = None, dtype: Any = torch.float32):
        if fields is None:
            raise DataError(path, "fields", 'missing; expected a table alias = "dataset", e.g. {x = "a", y = "u"}')
        super().__init__(path, fields, split=split, splits=splits, shuffle=shuffle, seed=seed, normalize=normalize,
                         channel_axis=channel_axis, stats_file=stats_file, dtype=dtype)

    def _inspect(self) -> int:
        counts = {}
        with open_h5(self.path) as f:
            for alias, var in self.fields.items():
                counts[alias] = numeric_dataset(f, self.path, alias, var).shape[0]
        return check_counts(self.path, self.fields, counts, "axis 0")

    def _open(self) -> _Handle:
        f = open_h5(self.path)
        return _Handle(f, {alias: f[var] for alias, var in self.fields.items()})

    def _read_item(self, h: _Handle, sample: int, sub: int) -> dict[str, np.ndarray]:
        return {alias: d[sample] for alias, d in h.dsets.items()}

    def _stat_blocks(self, h: _Handle, train: np.ndarray, aliases: set[str]):
        per_sample = sum(h.dsets[a].dtype.itemsize * int(np.prod(h.dsets[a].shape[1:])) for a in aliases)
        rows = max(1, BLOCK_BYTES // max(per_sample, 1))
        for start, stop in consecutive_runs(train, rows):
            for a in aliases:
                yield (a,), h.dsets[a][start:stop]


register_dataset("hdf5")(make_builder(HDF5Dataset, "hdf5"))
