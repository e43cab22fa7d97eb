"""`PoseidonDataset`: the NetCDF files of Poseidon / scOT (camlab-ethz/poseidon), as time pairs.

Format facts, from the dataset classes in camlab-ethz/poseidon `scOT/problems/` (which read the .nc
files with h5py, by variable name and axis position):

* time-dependent data is one variable of shape (sample, time, channel, x, y), or (sample, time, x, y)
  for a scalar field: `velocity` in NS-*.nc (channels u, v, and a tracer where present), `solution`
  in FNS-KF, CE-RM, GCE-RT (channels rho, u, v, p, ..., gravity potential at index 5), ACE and
  Wave-*.nc (scalar), `data` in CE-Gauss/KH/RP/CRP/RPUI.nc (rho, u, v, p[, tracer]);
  Wave-*.nc add a per-sample wave speed `c` (sample, x, y).
* time-independent data: Poisson-Gauss.nc `source` -> `solution` (sample, x, y); SE-AF.nc
  `solution` (sample, 2, x, y) with the input at index 0 and the target at 1.
* training pairs: with `max_num_time_steps` M and `time_step_size` s, every (t1, t2) = (s i, s j),
  0 <= i <= j <= M (scOT's "all2all"; `allowed_time_transitions` keeps only j - i in the list;
  `fix_input_to_time_step` t0 gives (t0, t0 + s k), k = 1..M), lead time (t2 - t1) / T where scOT
  uses the file's last time index as T (e.g. 20).
* scOT's splits: train = the first `num_trajectories` samples, val and test the last N_val + N_test
  samples of the N in the file (N_val = 120, N_test = 240 for the 20000-sample NS files); reproduce
  them with ranges, e.g. `splits = {train = [0, 19640], val = [19640, 19760], test = [19760, 20000]}`.

Assumed (not confirmed, since scOT reads positionally): the NetCDF dimension names. This reader
takes axes by position too, so any names work, including h5netcdf's phony names for plain HDF5.
Not reproduced: scOT's fixed normalisation constants and its padding of incompressible velocity to
(rho = 1, u, v, p = 0); use `normalize` (statistics from the train split, shared by x and y).

Items: `{"x": u[i, t1, channels], "y": u[i, t2, channels], "t": (t2 - t1) / time_scale}` plus the
`extra` per-sample fields (e.g. `extra = {c = "c"}` for Wave). With `fields` instead of a variable,
a time-independent NetCDFDataset over each variable's first (sample) dimension:
`PoseidonDataset("Poisson-Gauss.nc", fields={"x": "source", "y": "solution"})`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base import DataError, FieldDataset, check_fields, first_names, make_builder
from ..hdf5 import BLOCK_BYTES, consecutive_runs
from ..netcdf import NetCDFDataset, open_netcdf
from ..registry import register_dataset

TIME_VARIABLES = ("velocity", "solution", "data")


def _positive_int(v: Any, path: Any, key: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise DataError(path, key, f"expected an integer >= {minimum}, got {v!r}")
    return int(v)


class _Handle:
    def __init__(self, ds: Any, data: Any, extra: dict[str, Any]):
        self.ds, self.data, self.extra = ds, data, extra

    def close(self) -> None:
        self.ds.close()


class PoseidonDataset(NetCDFDataset):
    """Time pairs from a Poseidon / scOT NetCDF trajectory file (see the module docstring).

    Args:
        path: the .nc file.
        variable: the (sample, time, [channel,] x, y) variable; default the first of velocity,
            solution, data that the file has.
        fields: instead of `variable`, time-independent samples `{alias: variable}`.
        extra: per-sample fields added to every item, `{alias: variable}` of shape (sample, ...).
        channels: channel indices to keep (e.g. [0, 1] for the velocities of NS-PwC), default all.
        max_num_time_steps, time_step_size, fix_input_to_time_step, allowed_time_transitions: the
            pairs, as in scOT (defaults 7 and 2, scOT's in-distribution setting).
        time_scale: lead times are divided by this; default the last time index of the file.
        sample_dim: time-independent mode only (default: each variable's first dimension).
        Others: see `FieldDataset`; splits apply to trajectories, so all pairs of a trajectory share
        its split.
    """

    kind = "Poseidon NetCDF"

    def __init__(self, path: str | Path, variable: str | None = None, *, fields: Any = None, extra: Any = None,
                 channels: Sequence[int] | None = None, max_num_time_steps: int = 7, time_step_size: int = 2,
                 fix_input_to_time_step: int | None = None, allowed_time_transitions: Sequence[int] | None = None,
                 time_scale: float | None = None, sample_dim: str | None = None, split: str = "train",
                 splits: Any = (0.8, 0.1, 0.1), shuffle: bool = False, seed: int = 0, normalize: Any = None,
                 channel_axis: Any = None, stats_file: Any = None, dtype: Any = torch.float32):
        common = dict(split=split, splits=splits, shuffle=shuffle, seed=seed, normalize=normalize,
                      channel_axis=channel_axis, stats_file=stats_file, dtype=dtype)
        if fields is not None:
            if variable is not None or extra is not None:
                raise DataError(path, "fields", "give either variable (time pairs, with optional extra) or fields "
                                                "(time-independent samples), not both")
            self.time_mode = False
            super().__init__(path, fields, sample_dim=sample_dim, **common)
            return
        self.time_mode = True
        self.sample_dim = None
        if variable is not None and not (isinstance(variable, str) and variable):
            raise DataError(path, "variable", f"expected a variable name, got {variable!r}")
        self.variable = variable
        self.extra = {} if extra is None else check_fields(extra, path)
        if channels is not None and (isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence) or not channels
                                     or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in channels)):
            raise DataError(path, "channels", f"expected a non-empty list of channel indices, got {channels!r}")
        self.channels = None if channels is None else [int(c) for c in channels]
        self.max_num_time_steps = _positive_int(max_num_time_steps, path, "max_num_time_steps")
        self.time_step_size = _positive_int(time_step_size, path, "time_step_size")
        self.fix_input_to_time_step = (None if fix_input_to_time_step is None else
                                       _positive_int(fix_input_to_time_step, path, "fix_input_to_time_step", 0))
        if allowed_time_transitions is not None and (
                isinstance(allowed_time_transitions, (str, bytes)) or not isinstance(allowed_time_transitions, Sequence)
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in allowed_time_transitions)):
            raise DataError(path, "allowed_time_transitions", f"expected a list of non-negative integers, got "
                                                              f"{allowed_time_transitions!r}")
        self.allowed_time_transitions = allowed_time_transitions
        if time_scale is not None and (isinstance(time_scale, bool) or not isinstance(time_scale, (int, float))
                                       or not time_scale > 0):
            raise DataError(path, "time_scale", f"expected a positive number, got {time_scale!r}")
        self.time_scale = None if time_scale is None else float(time_scale)
        FieldDataset.__init__(self, path, None, **common)

    # ---- metadata -------------------------------------------------------------------------------
    def _pairs(self, steps: int) -> list[tuple[int, int]]:
        m, s, t0 = self.max_num_time_steps, self.time_step_size, self.fix_input_to_time_step
        last = (t0 or 0) + m * s
        if last > steps - 1:
            raise DataError(self.path, "max_num_time_steps", f"{m} steps of {s}{f' from {t0}' if t0 else ''} reach "
                                                             f"time index {last}, but {self.variable!r} has {steps} "
                                                             f"time steps (0..{steps - 1})")
        if t0 is not None:
            return [(t0, t0 + s * (k + 1)) for k in range(m)]
        allowed = self.allowed_time_transitions
        pairs = [(s * i, s * j) for i in range(m + 1) for j in range(i, m + 1) if allowed is None or j - i in allowed]
        if not pairs:
            raise DataError(self.path, "allowed_time_transitions", f"{list(allowed)} leaves no pair with "
                                                                   f"max_num_time_steps = {m}")
        return pairs

    def _inspect(self) -> int:
        if not self.time_mode:
            return super()._inspect()
        with open_netcdf(self.path) as ds:
            names = list(ds.variables)
            if self.variable is None:
                self.variable = next((v for v in TIME_VARIABLES if v in ds.variables and ds[v].ndim in (4, 5)), None)
                if self.variable is None:
                    raise DataError(self.path, "variable", f"missing, and none of {', '.join(TIME_VARIABLES)} is a (sample, "
                                                           f"time, [channel,] x, y) variable in the file (it has "
                                                           f"{first_names(names)}); for time-independent data give fields")
            elif self.variable not in ds.variables:
                raise DataError(self.path, "variable", f"no variable {self.variable!r} in the file; expected one of its "
                                                       f"variables: {first_names(names)}")
            da = ds[self.variable]
            if da.ndim not in (4, 5) or da.dtype.kind not in "biuf":
                raise DataError(self.path, "variable", f"{self.variable!r} has dims {da.dims}, shape {da.shape}, dtype "
                                                       f"{da.dtype}; expected a real (sample, time, channel, x, y) or "
                                                       "(sample, time, x, y) array")
            n, steps = int(da.shape[0]), int(da.shape[1])
            if self.channels is not None:
                if da.ndim == 4:
                    raise DataError(self.path, "channels", f"{self.variable!r} (dims {da.dims}) has no channel axis")
                bad = [c for c in self.channels if not 0 <= c < da.shape[2]]
                if bad:
                    raise DataError(self.path, "channels", f"{bad} out of range for the {da.shape[2]} channels of "
                                                           f"{self.variable!r}")
            for alias, var in self.extra.items():
                if var not in ds.variables:
                    raise DataError(self.path, f"extra.{alias}", f"no variable {var!r} in the file; expected one of "
                                                                 f"its variables: {first_names(names)}")
                if ds[var].ndim < 1 or ds[var].shape[0] != n:
                    raise DataError(self.path, f"extra.{alias}", f"{var!r} has shape {ds[var].shape}; expected {n} "
                                                                 f"samples along its first axis like {self.variable!r}")
        self._pair_list = self._pairs(steps)
        self._per_sample = len(self._pair_list)
        self._times = sorted({t for p in self._pair_list for t in p})
        if self.time_scale is None:
            self.time_scale = float(max(steps - 1, 1))
        self.fields = {"x": self.variable, "y": self.variable, **self.extra}
        return n

    # ---- reading --------------------------------------------------------------------------------
    def _item_keys(self) -> list[str]:
        return ["x", "y", "t", *self.extra] if self.time_mode else super()._item_keys()

    def _normalizable_keys(self) -> list[str]:
        return [k for k in self.keys if k != "t"] if self.time_mode else super()._normalizable_keys()

    def _open(self) -> Any:
        if not self.time_mode:
            return super()._open()
        ds = open_netcdf(self.path)
        return _Handle(ds, ds[self.variable], {a: ds[v] for a, v in self.extra.items()})

    def _index(self, samples: Any, times: Any) -> tuple:
        return (samples, times) + (() if self.channels is None else (self.channels,))

    def _read_item(self, h: Any, sample: int, sub: int) -> dict[str, np.ndarray]:
        if not self.time_mode:
            return super()._read_item(h, sample, sub)
        t1, t2 = self._pair_list[sub]
        item = {"x": h.data[self._index(sample, t1)].values, "y": h.data[self._index(sample, t2)].values,
                "t": np.asarray((t2 - t1) / self.time_scale)}
        for a, da in h.extra.items():
            item[a] = da[sample].values
        return item

    def _stat_blocks(self, h: Any, train: np.ndarray, aliases: set[str]):
        if not self.time_mode:
            yield from super()._stat_blocks(h, train, aliases)
            return
        frame = h.data.dtype.itemsize * int(np.prod(h.data.shape[2:]))
        rows = max(1, BLOCK_BYTES // max(frame * len(self._times), 1))
        for start, stop in consecutive_runs(train, rows):
            if aliases & {"x", "y"}:  # x and y share statistics: every used time of every train trajectory
                yield ("x", "y"), h.data[self._index(slice(start, stop), self._times)].values
            for a in aliases & set(self.extra):
                yield (a,), h.extra[a][start:stop].values

    def _stats_source(self, alias: str) -> dict[str, Any]:
        if not self.time_mode:
            return super()._stats_source(alias)
        if alias in self.extra:
            return {"variable": self.extra[alias]}
        return {"variable": self.variable, "channels": self.channels, "times": self._times}


register_dataset("poseidon")(make_builder(PoseidonDataset, "poseidon"))
