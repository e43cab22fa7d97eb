"""`MatDataset`: the `.mat` files of the FNO / LSM papers (Darcy `coeff`/`sol`, Navier-Stokes `a`/`u`,
Burgers `a`/`u`), MATLAB v5 and v7.3, with the FNO scripts' subsampling stride `r`.

```python
MatDataset("piececonst_r421_N1024_smooth1.mat", {"x": "coeff", "y": "sol"}, r=5)   # items (85, 85)
MatDataset("ns_V1e-3_N5000_T50.mat", {"x": "a", "y": "u"})   # x (64, 64), y (64, 64, 50)
```

Format facts (confirmed against the FNO `MatReader` in utilities3.py, in many copies on GitHub, and
MATLAB v7.3 writers that set the `MATLAB_class` attribute):

* v4-v7 files are read with `scipy.io.loadmat` (the format cannot be read in parts: the requested
  variables are loaded whole, once per process); `scipy.io.whosmat` supplies shapes without loading.
* v7.3 files are HDF5 (a 512-byte userblock holds MATLAB's text header); each variable is a top-level
  dataset with a `MATLAB_class` attribute. MATLAB is column-major, so an array MATLAB calls (N, X, Y)
  is stored as (Y, X, N): the axes are reversed on reading (the FNO reader's
  `np.transpose(x, range(ndim - 1, -1, -1))`), and only the requested sample is read. Complex arrays
  (compound `real`/`imag`) come back complex.
* Samples are along the first MATLAB axis (N x ...), as in all FNO data.
* `r` subsamples the first `spatial_dims` axes of each sample, `x[:, ::r, ::r]` as in the FNO scripts.
  `spatial_dims` defaults to min(2, sample ndim): (X, Y) of Darcy items, (X, Y) but not T of
  Navier-Stokes (X, Y, T) items, X of 1-D Burgers items. Set it for 3-D data.

With `fields` left out, `{"x": "coeff", "y": "sol"}` (Darcy) or `{"x": "a", "y": "u"}` is used,
whichever the file has.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base import DataError, FieldDataset, check_stride, first_names, make_builder
from ..hdf5 import check_counts, open_h5
from ..registry import register_dataset

DEFAULT_FIELDS = ({"x": "coeff", "y": "sol"}, {"x": "a", "y": "u"})
NUMERIC_CLASSES = {"double", "single", "logical", "int8", "int16", "int32", "int64",
                   "uint8", "uint16", "uint32", "uint64"}


def _class_name(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _H5Handle:
    def __init__(self, file: Any, dsets: dict[str, Any]):
        self.file, self.dsets = file, dsets

    def close(self) -> None:
        self.file.close()


class MatDataset(FieldDataset):
    """Items `{alias: variable[i, ::r, ::r, ...]}` from a MATLAB .mat file (v5 or v7.3).

    Args:
        path: the .mat file.
        fields: `{alias: variable}`; default Darcy `coeff`/`sol` or `a`/`u`, whichever exist.
        r: subsampling stride of the spatial axes (1: all points).
        spatial_dims: how many leading axes of a sample are spatial (strided by `r`); default
            min(2, sample ndim).
        Others: see `FieldDataset`.

    Raises:
        FileNotFoundError: no such file.
        ValueError (`DataError`): not a .mat file, a missing or non-numeric variable (the message lists
            the file's variables), different sample counts, bad `r` / `spatial_dims` / splits.
    """

    kind = "MATLAB .mat"

    def __init__(self, path: str | Path, fields: Any = None, *, r: int = 1, spatial_dims: int | None = None,
                 split: str = "train", splits: Any = (0.8, 0.1, 0.1), shuffle: bool = False, seed: int = 0,
                 normalize: Any = None, channel_axis: Any = None, stats_file: Any = None, dtype: Any = torch.float32):
        self.r = check_stride(r, path)
        if spatial_dims is not None and (isinstance(spatial_dims, bool) or not isinstance(spatial_dims, int)
                                         or spatial_dims < 0):
            raise DataError(path, "spatial_dims", f"expected a non-negative integer, got {spatial_dims!r}")
        self.spatial_dims = spatial_dims
        super().__init__(path, fields, split=split, splits=splits, shuffle=shuffle, seed=seed, normalize=normalize,
                         channel_axis=channel_axis, stats_file=stats_file, dtype=dtype)

    # ---- metadata -------------------------------------------------------------------------------
    def _variables(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """{name: (shape in MATLAB order, MATLAB class)} of the file's top-level variables."""
        import h5py

        if self.v73:
            out = {}
            with open_h5(self.path, "MATLAB v7.3 (HDF5)") as f:
                for name, obj in f.items():
                    if isinstance(obj, h5py.Dataset) and not name.startswith("#"):
                        cls = obj.attrs.get("MATLAB_class")
                        if cls is None:
                            cls = "double" if obj.dtype.kind in "biuf" or obj.dtype.names == ("real", "imag") else str(obj.dtype)
                        out[name] = (tuple(reversed(obj.shape)), _class_name(cls))
            return out
        import scipy.io

        try:
            return {name: (tuple(shape), cls) for name, shape, cls in scipy.io.whosmat(str(self.path))}
        except Exception as err:  # noqa: BLE001  scipy raises ValueError, TypeError, struct.error, ...
            raise DataError(self.path, "", f"cannot read as a MATLAB .mat file ({type(err).__name__}: {err})") from None

    def _inspect(self) -> int:
        import h5py

        self.v73 = bool(h5py.is_hdf5(self.path))
        self._fork_safe_handle = not self.v73  # v5: variables in memory, inherited by forked workers
        variables = self._variables()
        if self.fields is None:
            self.fields = next((f for f in DEFAULT_FIELDS if all(v in variables for v in f.values())), None)
            if self.fields is None:
                raise DataError(self.path, "fields", "missing, and the file has neither coeff/sol nor a/u; expected a "
                                                     f"table alias = \"variable\" among {first_names(variables)}")
        self._select: dict[str, tuple] = {}
        counts = {}
        for alias, var in self.fields.items():
            if var not in variables:
                raise DataError(self.path, f"fields.{alias}", f"no variable {var!r} in the file; expected one of its "
                                                              f"variables: {first_names(variables)}")
            shape, cls = variables[var]
            if cls not in NUMERIC_CLASSES or len(shape) < 1:
                raise DataError(self.path, f"fields.{alias}", f"variable {var!r} is a MATLAB {cls} of size {shape}; "
                                                              "expected a numeric array with samples along the first axis")
            counts[alias] = shape[0]
            k = len(shape) - 1
            spatial = min(2, k) if self.spatial_dims is None else self.spatial_dims
            if spatial > k:
                raise DataError(self.path, "spatial_dims", f"{spatial} exceeds the {k} axes of a sample of {var!r} "
                                                           f"(size {shape})")
            self._select[alias] = tuple(slice(None, None, self.r) if j < spatial else slice(None) for j in range(k))
        return check_counts(self.path, self.fields, counts, "the first MATLAB axis")

    # ---- reading --------------------------------------------------------------------------------
    def _open(self) -> Any:
        if self.v73:
            f = open_h5(self.path, "MATLAB v7.3 (HDF5)")
            return _H5Handle(f, {alias: f[var] for alias, var in self.fields.items()})
        import scipy.io

        return scipy.io.loadmat(str(self.path), variable_names=list(set(self.fields.values())))

    def _close(self, handle: Any) -> None:
        if self.v73:
            handle.close()

    def _read_item(self, h: Any, sample: int, sub: int) -> dict[str, np.ndarray]:
        out = {}
        for alias, var in self.fields.items():
            sel = (sample,) + self._select[alias]
            if self.v73:
                a = h.dsets[alias][tuple(reversed(sel))]  # stored axes are MATLAB's reversed
                if a.dtype.names == ("real", "imag"):
                    a = a["real"] + 1j * a["imag"]
                out[alias] = np.asarray(a).T
            else:
                out[alias] = np.array(h[var][sel])  # a copy: the loaded variable stays intact
        return out

    def _stats_source(self, alias: str) -> dict[str, Any]:
        return {"variable": self.fields[alias], "r": self.r, "select": repr(self._select[alias])}


register_dataset("mat")(make_builder(MatDataset, "mat"))
