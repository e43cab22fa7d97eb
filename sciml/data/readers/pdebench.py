"""`PDEBenchDataset`: PDEBench HDF5 files, all three layouts, read one sample at a time.

Layouts (confirmed against pdebench/PDEBench `pdebench/models/fno/utils.py`, FNODatasetSingle and
FNODatasetMult):

* "tensor" (1-D Advection, Burgers, diff-sorp ... and 2-D Darcy): a dataset `tensor` of shape
  (N, T, X[, Y]) plus 1-D `x-coordinate`, `t-coordinate` (`y-coordinate` in 2-D). Darcy flow has
  `tensor` (N, 1, X, Y) (the solution) and `nu` (N, X, Y) (the coefficient).
  Default fields: `{"u": "tensor"}`, for Darcy `{"x": "nu", "y": "tensor"}`.
* "cfd" (compressible Navier-Stokes): datasets `density`, `pressure`, `Vx` (`Vy`, `Vz`), each
  (N, T, X[, Y[, Z]]), plus coordinates as above. Default fields: all of those present.
* "seed" (2-D diffusion-reaction, shallow water, ...): one group per sample, named "0000", "0001",
  ... (sorted by name), each with `data` of shape (T, X[, Y[, Z]], V) and a `grid` group holding
  `x` (`y`, `z`) and `t`. Default fields: `{"u": "data"}`.

A field whose ndim matches the main variable (`tensor`, `density`) has a time axis first; others
(`nu`) are purely spatial. In the seed layout `data` is (T, space..., V); other datasets of a group
are read as they are. `r` subsamples the spatial axes and `r_t` the time axis (PDEBench's
`reduced_resolution` and `reduced_resolution_t`); `coords` holds the coordinates, subsampled alike
(`t` as stored: some files keep one more time coordinate than time steps).

`initial_step = k` turns each sample into an input/target pair for autoregressive training:
`{"x": u[:k], "y": u[k:]}` along time, where `u` is the one field, or all fields stacked on a new last
(channel) axis in `fields` order (the "cfd" layout). Note PDEBench's own loaders return the full
trajectory as the target; here `y` holds only the steps after the input.

Splits: this reader uses the usual `splits` (default 80/10/10 contiguous). PDEBench's own loaders
take the FIRST 10 % as test for "tensor"/"cfd" files and the LAST 10 % of seeds for "seed" files;
reproduce those with explicit ranges, e.g. `splits = {test = [0, 100], train = [100, 1000]}`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base import DataError, FieldDataset, check_stride, first_names, make_builder
from ..hdf5 import check_counts, dataset_names, numeric_dataset, open_h5
from ..registry import register_dataset

CFD_VARIABLES = ("density", "pressure", "Vx", "Vy", "Vz")
AXES = ("x", "y", "z")


class _Handle:
    def __init__(self, file: Any, dsets: dict[str, Any] | None):
        self.file, self.dsets = file, dsets

    def close(self) -> None:
        self.file.close()


class PDEBenchDataset(FieldDataset):
    """Samples of a PDEBench HDF5 file (layouts "tensor", "cfd" and "seed"; see the module docstring).

    Args:
        path: the .hdf5 / .h5 file.
        fields: `{alias: variable}` (in the seed layout: the dataset name inside each seed group);
            default per layout as above.
        initial_step: None for items `{alias: field}`; k for `{"x": u[:k], "y": u[k:]}`.
        r, r_t: spatial and temporal subsampling strides.
        Others: see `FieldDataset`.

    Attributes:
        layout: "tensor", "cfd" or "seed".
        coords: `{"x": ..., "t": ...}` coordinate tensors (those the file has), subsampled like the data.
    """

    kind = "PDEBench HDF5"

    def __init__(self, path: str | Path, fields: Any = None, *, initial_step: int | None = None, r: int = 1,
                 r_t: int = 1, split: str = "train", splits: Any = (0.8, 0.1, 0.1), shuffle: bool = False,
                 seed: int = 0, normalize: Any = None, channel_axis: Any = None, stats_file: Any = None,
                 dtype: Any = torch.float32):
        self.r, self.r_t = check_stride(r, path, "r"), check_stride(r_t, path, "r_t")
        if initial_step is not None and (isinstance(initial_step, bool) or not isinstance(initial_step, int)
                                         or initial_step < 1):
            raise DataError(path, "initial_step", f"expected a positive number of input time steps, got {initial_step!r}")
        self.initial_step = initial_step
        super().__init__(path, fields, split=split, splits=splits, shuffle=shuffle, seed=seed, normalize=normalize,
                         channel_axis=channel_axis, stats_file=stats_file, dtype=dtype)

    # ---- metadata -------------------------------------------------------------------------------
    def _inspect(self) -> int:
        import h5py

        with open_h5(self.path, "PDEBench HDF5") as f:
            groups = sorted(k for k, v in f.items() if isinstance(v, h5py.Group))
            if "tensor" in f:
                self.layout = "tensor"
                default = {"x": "nu", "y": "tensor"} if "nu" in f else {"u": "tensor"}
            elif any(v in f for v in CFD_VARIABLES):
                self.layout = "cfd"
                default = {v: v for v in CFD_VARIABLES if v in f}
            elif groups and isinstance(f[groups[0]].get("data"), h5py.Dataset):
                self.layout = "seed"
                default = {"u": "data"}
            else:
                raise DataError(self.path, "", "not a PDEBench file: expected a 'tensor' dataset, CFD datasets "
                                               f"({', '.join(CFD_VARIABLES)}) or per-seed groups holding 'data'; "
                                               f"found {first_names(list(f))}")
            if self.fields is None:
                self.fields = default
            if self.layout == "seed":
                n = self._inspect_seeds(f, groups)
            else:
                n = self._inspect_single(f)
            self.coords = self._read_coords(f)
        if self.initial_step is not None:
            self._check_initial_step()
        return n

    def _inspect_single(self, f: Any) -> int:
        main = f["tensor"] if self.layout == "tensor" else f[next(v for v in CFD_VARIABLES if v in f)]
        counts, self._select = {}, {}
        self._has_time = {}
        for alias, var in self.fields.items():
            obj = numeric_dataset(f, self.path, alias, var)
            counts[alias] = obj.shape[0]
            timed = obj.ndim == main.ndim and obj.ndim >= 2
            self._has_time[alias] = timed
            k = obj.ndim - 1
            self._select[alias] = tuple(slice(None, None, self.r_t if (timed and j == 0) else self.r) for j in range(k))
        return check_counts(self.path, self.fields, counts, "axis 0")

    def _inspect_seeds(self, f: Any, groups: list[str]) -> int:
        import h5py

        self._seeds = groups
        self._select, self._has_time = {}, {}
        first = f[groups[0]]
        shapes = {}
        for alias, var in self.fields.items():
            obj = first.get(var)
            if not isinstance(obj, h5py.Dataset) or obj.dtype.kind not in "biufc":
                raise DataError(self.path, f"fields.{alias}", f"no numeric dataset {var!r} in seed group {groups[0]!r}; "
                                                              f"expected one of {first_names(dataset_names(first))}")
            shapes[alias] = obj.shape
            timed = var == "data" and obj.ndim >= 2
            self._has_time[alias] = timed
            if timed:  # (T, space..., V)
                self._select[alias] = ((slice(None, None, self.r_t),) + (slice(None, None, self.r),) * (obj.ndim - 2)
                                       + (slice(None),))
            else:
                self._select[alias] = ()
        for g in groups[1:]:
            group = f[g]
            for alias, var in self.fields.items():
                obj = group.get(var) if isinstance(group, h5py.Group) else None
                if not isinstance(obj, h5py.Dataset):
                    raise DataError(self.path, f"fields.{alias}", f"seed group {g!r} has no dataset {var!r}; expected "
                                                                  "every seed group to hold the same datasets")
                if obj.shape != shapes[alias]:
                    raise DataError(self.path, f"fields.{alias}", f"{g}/{var} has shape {obj.shape}, but "
                                                                  f"{groups[0]}/{var} has {shapes[alias]}; expected equal shapes")
        return len(groups)

    def _read_coords(self, f: Any) -> dict[str, torch.Tensor]:
        import h5py

        if self.layout == "seed":
            grid = f[self._seeds[0]].get("grid")
            names = {a: f"{a}" for a in AXES + ("t",)}
            where = grid if isinstance(grid, h5py.Group) else None
        else:
            names = {a: f"{a}-coordinate" for a in AXES + ("t",)}
            where = f
        coords = {}
        if where is None:
            return coords
        for axis, name in names.items():
            obj = where.get(name)
            if isinstance(obj, h5py.Dataset) and obj.ndim == 1:
                step = self.r_t if axis == "t" else self.r
                coords[axis] = torch.as_tensor(np.asarray(obj[()])[::step], dtype=torch.float64)
        return coords

    def _check_initial_step(self) -> None:
        k = self.initial_step
        untimed = [a for a in self.fields if not self._has_time[a]]
        if untimed:
            raise DataError(self.path, "initial_step", f"needs time-dependent fields; {first_names(untimed)} "
                                                       f"({', '.join(repr(self.fields[a]) for a in untimed)}) have no time axis")
        with self._opened() as h:
            item = self._read_fields(h, 0)
        steps = {a: v.shape[0] for a, v in item.items()}
        if len(set(steps.values())) > 1 or len({v.shape for v in item.values()}) > 1:
            raise DataError(self.path, "fields", f"fields differ in shape {({a: v.shape for a, v in item.items()})}; "
                                                 "initial_step stacks them, so expected equal shapes")
        t = next(iter(steps.values()))
        if k >= t:
            raise DataError(self.path, "initial_step", f"{k} leaves no target step: the data has {t} time steps "
                                                       f"(after r_t = {self.r_t})")

    # ---- reading --------------------------------------------------------------------------------
    def _item_keys(self) -> list[str]:
        return ["x", "y"] if self.initial_step is not None else list(self.fields)

    def _open(self) -> _Handle:
        f = open_h5(self.path, "PDEBench HDF5")
        if self.layout == "seed":
            return _Handle(f, None)
        return _Handle(f, {alias: f[var] for alias, var in self.fields.items()})

    def _read_fields(self, h: _Handle, sample: int) -> dict[str, np.ndarray]:
        if self.layout == "seed":
            group = h.file[self._seeds[sample]]
            return {a: np.asarray(group[var][self._select[a]]) for a, var in self.fields.items()}
        return {a: np.asarray(h.dsets[a][(sample,) + self._select[a]]) for a in self.fields}

    def _read_item(self, h: _Handle, sample: int, sub: int) -> dict[str, np.ndarray]:
        item = self._read_fields(h, sample)
        k = self.initial_step
        if k is None:
            return item
        u = next(iter(item.values())) if len(item) == 1 else np.stack(list(item.values()), axis=-1)
        return {"x": u[:k], "y": u[k:]}

    def _stats_source(self, alias: str) -> dict[str, Any]:
        return {"layout": self.layout, "fields": self.fields, "initial_step": self.initial_step, "r": self.r,
                "r_t": self.r_t}


register_dataset("pdebench")(make_builder(PDEBenchDataset, "pdebench"))
