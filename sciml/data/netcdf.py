"""`NetCDFDataset`: samples along a named dimension of NetCDF-4 variables, via xarray (h5netcdf engine).

```python
ds = NetCDFDataset("ns.nc", fields={"x": "a", "y": "u"}, sample_dim="sample", normalize="x")
```

```toml
[data]
kind = "netcdf"
path = "data/ns.nc"
fields = {x = "a", y = "u"}
sample_dim = "sample"
```

Each item is `{alias: variable.isel(sample_dim=i)}`: the remaining dimensions stay in the file's order
(the sample dimension need not be the first). `sample_dim = None` (in Python) takes each variable's
first dimension, whatever its name. The file is opened lazily per process with `cache=False`, so only
the requested sample is read; xarray's usual decoding applies (scale_factor/add_offset, _FillValue
-> NaN; times are left as numbers). HDF5 files without NetCDF dimension scales open too (dimensions
then get h5netcdf's "phony" names, so use `sample_dim = None`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import DataError, FieldDataset, first_names, make_builder
from .hdf5 import BLOCK_BYTES, check_counts, consecutive_runs
from .registry import register_dataset


def open_netcdf(path: Path) -> Any:
    import xarray as xr

    try:
        return xr.open_dataset(path, engine="h5netcdf", cache=False, decode_times=False, decode_timedelta=False,
                               phony_dims="sort")
    except (OSError, ValueError, TypeError) as err:
        raise DataError(path, "", f"cannot open as NetCDF-4 (h5netcdf engine): {err}") from None


class _Handle:
    def __init__(self, ds: Any, arrays: dict[str, Any], dims: dict[str, str]):
        self.ds, self.arrays, self.dims = ds, arrays, dims

    def close(self) -> None:
        self.ds.close()


class NetCDFDataset(FieldDataset):
    """Items `{alias: variable.isel({sample_dim: i})}` from variables of one NetCDF-4 file.

    See `FieldDataset` for split, shuffle, seed, normalize, channel_axis, stats_file and dtype.

    Raises:
        FileNotFoundError: no such file.
        ValueError (`DataError`): not NetCDF-4, a missing variable (the message lists the file's
            variables), a variable without `sample_dim`, different sample counts, bad splits or options.
    """

    kind = "netcdf"

    def __init__(self, path: str | Path, fields: Any, *, sample_dim: str | None = "sample", split: str = "train",
                 splits: Any = (0.8, 0.1, 0.1), shuffle: bool = False, seed: int = 0, normalize: Any = None,
                 channel_axis: Any = None, stats_file: Any = None, dtype: Any = torch.float32):
        if fields is None:
            raise DataError(path, "fields", 'missing; expected a table alias = "variable", e.g. {x = "a", y = "u"}')
        if sample_dim is not None and not (isinstance(sample_dim, str) and sample_dim):
            raise DataError(path, "sample_dim", f"expected a dimension name, got {sample_dim!r}")
        self.sample_dim = sample_dim
        super().__init__(path, fields, split=split, splits=splits, shuffle=shuffle, seed=seed, normalize=normalize,
                         channel_axis=channel_axis, stats_file=stats_file, dtype=dtype)

    def _variable(self, ds: Any, alias: str, var: str) -> tuple[Any, str]:
        """The DataArray of `var` and its sample dimension, validated."""
        if var not in ds.variables:
            raise DataError(self.path, f"fields.{alias}", f"no variable {var!r} in the file; expected one of its "
                                                          f"variables: {first_names(list(ds.variables))}")
        da = ds[var]
        if da.ndim < 1 or da.dtype.kind not in "biufc":
            raise DataError(self.path, f"fields.{alias}", f"variable {var!r} (dims {da.dims}, dtype {da.dtype}) is not "
                                                          "a numeric array with a sample dimension")
        dim = self.sample_dim if self.sample_dim is not None else da.dims[0]
        if dim not in da.dims:
            raise DataError(self.path, f"fields.{alias}", f"variable {var!r} has dims {da.dims}; expected a "
                                                          f"{dim!r} dimension holding the samples (option sample_dim)")
        return da, dim

    def _inspect(self) -> int:
        counts = {}
        with open_netcdf(self.path) as ds:
            for alias, var in self.fields.items():
                da, dim = self._variable(ds, alias, var)
                counts[alias] = int(da.sizes[dim])
        where = f"dimension {self.sample_dim!r}" if self.sample_dim else "each variable's first dimension"
        return check_counts(self.path, self.fields, counts, where)

    def _open(self) -> _Handle:
        ds = open_netcdf(self.path)
        arrays, dims = {}, {}
        for alias, var in self.fields.items():
            arrays[alias], dims[alias] = self._variable(ds, alias, var)
        return _Handle(ds, arrays, dims)

    def _read_item(self, h: _Handle, sample: int, sub: int) -> dict[str, np.ndarray]:
        return {a: h.arrays[a].isel({h.dims[a]: sample}).values for a in h.arrays}

    def _stat_blocks(self, h: _Handle, train: np.ndarray, aliases: set[str]):
        per_sample = sum(h.arrays[a].dtype.itemsize * h.arrays[a].size // h.arrays[a].sizes[h.dims[a]] for a in aliases)
        rows = max(1, BLOCK_BYTES // max(per_sample, 1))
        for start, stop in consecutive_runs(train, rows):
            for a in aliases:
                block = h.arrays[a].isel({h.dims[a]: slice(start, stop)})
                yield (a,), block.transpose(h.dims[a], ...).values


register_dataset("netcdf")(make_builder(NetCDFDataset, "netcdf"))
