"""The shared machinery of the file-backed datasets: fields, splits, lazy per-process file handles,
normalisation, conversion to tensors, and `build_dataset` builders.

A subclass says how to open its file, how many samples it holds and how to read one item; this class
does the rest. Items are dicts of tensors keyed by the field aliases (`fields={"x": "a", "y": "u"}`
gives items `{"x": <a[i]>, "y": <u[i]>}`).

File handles are never pickled: each process (the main one, every DataLoader worker, every DDP rank)
opens the file itself on its first `__getitem__`, and a handle inherited through `fork` is replaced,
so `num_workers > 0` works with any start method.
"""
from __future__ import annotations

import contextlib
import errno
import inspect
import operator
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from . import normalization as norm
from .splits import check_splits, split_indices

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
_NUMPY_FLOAT = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16}


class DataError(ValueError):
    """Bad data or data options: `file: key: what was expected` (the same form as `ConfigError`)."""

    def __init__(self, file: Any, key: str, message: str):
        self.file, self.key = str(file), key
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")


def missing_file(path: Path, what: str) -> FileNotFoundError:
    """`FileNotFoundError` whose message names the file: `[Errno 2] no such <what> file: '<path>'`."""
    return FileNotFoundError(errno.ENOENT, f"no such {what} file", str(path))


def resolve_dtype(dtype: Any, file: Any = "<data>") -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise DataError(file, "dtype", f"expected one of {', '.join(DTYPES)}, got {dtype!r}")


def check_fields(fields: Any, file: Any) -> dict[str, str]:
    """`{"x": "a"}` as is; a list `["a", "u"]` as `{"a": "a", "u": "u"}`."""
    if isinstance(fields, Mapping):
        out = dict(fields)
    elif isinstance(fields, Sequence) and not isinstance(fields, (str, bytes)):
        out = {v: v for v in fields}
    else:
        out = None
    if not out or not all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in out.items()):
        raise DataError(file, "fields", f'expected a non-empty table alias = "variable", e.g. {{x = "a", y = "u"}}, '
                                        f"or a list of variable names; got {fields!r}")
    return out


def check_stride(r: Any, file: Any, key: str = "r") -> int:
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
        raise DataError(file, key, f"expected a positive integer stride, got {r!r}")
    return int(r)


def first_names(names: Sequence[str], limit: int = 12) -> str:
    names = list(names)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(repr(n) for n in names[:limit]) + more if names else "(none)"


class FieldDataset(Dataset):
    """Samples along one axis of named arrays in one file, as dicts of tensors.

    Args:
        path: the data file.
        fields: `{alias: variable}`; items are `{alias: tensor}`. A list of names uses them as aliases.
        split: "train", "val" or "test".
        splits: fractions `(train, val, test)` or index ranges `{"train": [0, 800], ...}`; see
            `sciml.data.splits` for the exact (deterministic) assignment.
        shuffle, seed: seeded-random split membership instead of contiguous blocks (fractions only).
        normalize: None, an alias, a list of aliases, or True (all): items of those fields come out as
            `(value - mean) / std`, with mean/std over the TRAIN split (whatever `split` is), computed
            in one streaming pass and cached in `<file>.stats.json`; `denormalize(alias, tensor)` undoes it.
        channel_axis: None for one scalar mean/std per field; an item axis (e.g. 0 for (C, X, Y) items,
            -1 for channel-last) for one per channel; or `{alias: axis}`.
        stats_file: where to cache statistics (default `<file>.stats.json`); False: compute, never cache.
        dtype: tensor dtype of the items ("float32", "float64", ... or a torch dtype); complex data
            becomes the complex dtype of the same precision.
    """

    kind = "data"  # file kind in messages, e.g. "no such hdf5 file"
    _fork_safe_handle = False  # True where the handle is plain memory (it survives fork)

    def __init__(self, path: str | os.PathLike, fields: Any = None, *, split: str = "train",
                 splits: Any = (0.8, 0.1, 0.1), shuffle: bool = False, seed: int = 0, normalize: Any = None,
                 channel_axis: Any = None, stats_file: Any = None, dtype: Any = torch.float32):
        self.path = Path(path)
        self._h: Any = None
        self._h_pid: int | None = None
        self._shapes: dict[str, tuple[int, ...]] | None = None
        if not self.path.is_file():
            raise missing_file(self.path, self.kind)
        self.split = split
        self.dtype = resolve_dtype(dtype, self.path)
        check_splits(splits, file=self.path)
        if not isinstance(shuffle, bool):
            raise DataError(self.path, "shuffle", f"expected true or false, got {shuffle!r}")
        self.fields: dict[str, str] | None = None if fields is None else check_fields(fields, self.path)
        self.num_samples = self._inspect()
        if self.num_samples < 1:
            raise DataError(self.path, "fields", "the file holds no samples")
        split_args = dict(shuffle=shuffle, seed=seed, file=self.path)
        self.indices = split_indices(self.num_samples, splits, split, **split_args)
        self.keys: tuple[str, ...] = tuple(self._item_keys())
        self.stats: dict[str, dict[str, Any]] = {}
        self._norm: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        aliases = self._check_normalize(normalize)
        if aliases:
            train = split_indices(self.num_samples, splits, "train", **split_args)
            self._setup_normalization(aliases, channel_axis, stats_file, train)

    # ---- what a subclass provides -------------------------------------------------------------
    def _inspect(self) -> int:
        """Open the file's metadata, validate `self.fields` (choose defaults if None), return the
        sample count. Raise `DataError` naming the file and variable on any mismatch."""
        raise NotImplementedError

    def _open(self) -> Any:
        """A handle for `_read_item` (opened in the calling process)."""
        raise NotImplementedError

    def _close(self, handle: Any) -> None:
        close = getattr(handle, "close", None)
        if close is not None:
            close()

    def _read_item(self, handle: Any, sample: int, sub: int) -> dict[str, np.ndarray]:
        """Item `sub` of sample `sample`, as numpy arrays keyed like `self.keys`."""
        raise NotImplementedError

    _per_sample = 1  # items per sample (e.g. time pairs of one trajectory)

    def _item_keys(self) -> list[str]:
        return list(self.fields)

    def _normalizable_keys(self) -> list[str]:
        return list(self.keys)

    def _stats_source(self, alias: str) -> dict[str, Any]:
        """What the values of `alias` are made of (part of the stats-cache key)."""
        return {"variable": self.fields.get(alias) if self.fields else None}

    def _stat_blocks(self, handle: Any, train: np.ndarray, aliases: set[str]) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
        """Blocks of train-split values: `(aliases, array)`; the array's trailing axes are one item's
        (leading axes, if any, are samples). Default: item by item."""
        for s in train:
            for sub in range(self._per_sample):
                item = self._read_item(handle, int(s), sub)
                for a in aliases:
                    yield (a,), item[a]

    # ---- Dataset protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.indices) * self._per_sample

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self)
        i = operator.index(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for the {n} items of the {self.split!r} split of {self.path.name}")
        sample, sub = divmod(i, self._per_sample)
        raw = self._read_item(self._handle(), int(self.indices[sample]), sub)
        out = {}
        for k, v in raw.items():
            t = self._to_tensor(v)
            out[k] = self.normalize(k, t) if k in self._norm else t
        return out

    def _to_tensor(self, v: Any) -> torch.Tensor:
        a = np.asarray(v)
        if np.iscomplexobj(a):
            target = np.complex128 if self.dtype == torch.float64 else np.complex64
        else:
            target = _NUMPY_FLOAT.get(self.dtype, np.float32)
        a = a.astype(target, order="C", copy=False)
        if not a.flags.writeable:
            a = a.copy()
        t = torch.from_numpy(a)
        return t if t.is_complex() or t.dtype == self.dtype else t.to(self.dtype)

    # ---- handles ------------------------------------------------------------------------------
    def _handle(self) -> Any:
        pid = os.getpid()
        if self._h is None or (self._h_pid != pid and not self._fork_safe_handle):
            self._h = self._open()  # a handle inherited through fork is dropped, not closed
            self._h_pid = pid
        return self._h

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Any]:
        """A temporary handle, closed afterwards (metadata and statistics passes)."""
        h = self._open()
        try:
            yield h
        finally:
            self._close(h)

    def close(self) -> None:
        """Close this process's file handle (reopened on the next item)."""
        h, self._h = self._h, None
        if h is not None and self._h_pid == os.getpid():
            self._close(h)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h"], state["_h_pid"] = None, None
        return state

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> "FieldDataset":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in (self.fields or {}).items())
        return (f"{type(self).__name__}({str(self.path)!r}, {fields}; split {self.split!r}: {len(self)} of "
                f"{self.num_samples} samples{'; normalized ' + ', '.join(self._norm) if self._norm else ''})")

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each entry of an item (read from the first sample; no normalisation needed)."""
        if self._shapes is None:
            raw = self._read_item(self._handle(), int(self.indices[0]) if len(self.indices) else 0, 0)
            self._shapes = {k: tuple(np.shape(v)) for k, v in raw.items()}
        return self._shapes

    # ---- normalisation ------------------------------------------------------------------------
    def _check_normalize(self, normalize: Any) -> tuple[str, ...]:
        allowed = self._normalizable_keys()
        if normalize is None or normalize is False:
            return ()
        if normalize is True:
            return tuple(allowed)
        names = [normalize] if isinstance(normalize, str) else normalize
        if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
            raise DataError(self.path, "normalize", f"expected a field alias, a list of them, or true; got {normalize!r}")
        for n in names:
            if n not in allowed:
                raise DataError(self.path, "normalize", f"unknown field {n!r}; expected one of {first_names(allowed)}")
        return tuple(dict.fromkeys(names))

    def _channel_axis(self, channel_axis: Any, alias: str) -> int | None:
        ax = channel_axis.get(alias) if isinstance(channel_axis, Mapping) else channel_axis
        if ax is None:
            return None
        ndim = len(self.shapes[alias])
        if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)) or not -ndim <= ax < ndim:
            raise DataError(self.path, "channel_axis",
                            f"expected an axis of the {ndim}-d items of {alias!r} (shape {self.shapes[alias]}), got {ax!r}")
        return int(ax) - ndim if ax >= 0 else int(ax)

    def _setup_normalization(self, aliases: tuple[str, ...], channel_axis: Any, stats_file: Any,
                             train: np.ndarray) -> None:
        if len(train) == 0:
            raise DataError(self.path, "normalize", "needs a non-empty train split (statistics come from it)")
        if channel_axis is not None and not isinstance(channel_axis, (Mapping, int, np.integer)):
            raise DataError(self.path, "channel_axis", f"expected an integer axis or a table alias = axis, got {channel_axis!r}")
        axes = {a: self._channel_axis(channel_axis, a) for a in aliases}
        digest = {"count": int(len(train)), "digest": norm.indices_digest(train)}
        signatures = {a: {"class": type(self).__name__, "field": a, "source": self._stats_source(a),
                          "channel_axis": axes[a], "train": digest} for a in aliases}
        keys = {a: norm.entry_key(signatures[a]) for a in aliases}
        if stats_file is False:
            stats_path = None
        elif stats_file is None:
            stats_path = norm.stats_path_for(self.path)
        elif isinstance(stats_file, (str, os.PathLike)):
            stats_path = Path(stats_file)
        else:
            raise DataError(self.path, "stats_file", f"expected a path or false, got {stats_file!r}")
        identity = norm.file_identity(self.path)
        entries = norm.load_entries(stats_path, identity) if stats_path else {}
        missing = [a for a in aliases if not _valid_entry(entries.get(keys[a]))]
        if missing:
            computed = self._compute_stats(missing, axes, train)
            for a in missing:
                mean, std, count = computed[a]
                entries[keys[a]] = {"signature": signatures[a], "mean": mean.tolist(), "std": std.tolist(),
                                    "count": int(count)}
            if stats_path:
                norm.save_entries(stats_path, identity, self.path.name, entries)
        self.stats_path = stats_path
        for a in aliases:
            e = entries[keys[a]]
            ax = axes[a]
            shape = () if ax is None else (len(e["mean"]),) + (1,) * (-ax - 1)
            mean = torch.tensor(e["mean"], dtype=torch.float64).reshape(shape)
            std = torch.tensor(e["std"], dtype=torch.float64).reshape(shape)
            self.stats[a] = {"mean": mean, "std": std, "count": e["count"], "channel_axis": ax}
            self._norm[a] = (mean, torch.where(std > 0, std, torch.ones_like(std)))  # constant fields: shift only

    def _compute_stats(self, aliases: list[str], axes: dict[str, int | None], train: np.ndarray):
        acc = {a: norm.RunningStats(axes[a]) for a in aliases}
        with self._opened() as h:
            for names, block in self._stat_blocks(h, train, set(aliases)):
                for a in names:
                    if a in acc:
                        try:
                            acc[a].update(block)
                        except ValueError as err:
                            raise DataError(self.path, "normalize", f"field {a!r}: {err}") from None
        return {a: acc[a].result() for a in aliases}

    def normalize(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """`(tensor - mean) / std` with the train statistics of field `name` (an item or a batch)."""
        if name not in self._norm:
            self._check_name(name)
            return tensor
        mean, std = self._norm[name]
        return (tensor - mean.to(tensor.device, tensor.dtype)) / std.to(tensor.device, tensor.dtype)

    def denormalize(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """Undo `normalize` for field `name` (e.g. a model's prediction of it): `tensor * std + mean`.

        Works on one item or a batch (leading batch axes); a field that is not normalised is returned
        unchanged. Constant fields (std 0) were only shifted, so they are only shifted back.
        """
        if name not in self._norm:
            self._check_name(name)
            return tensor
        mean, std = self._norm[name]
        return tensor * std.to(tensor.device, tensor.dtype) + mean.to(tensor.device, tensor.dtype)

    def _check_name(self, name: str) -> None:
        if name not in self.keys:
            raise DataError(self.path, "fields", f"unknown field {name!r}; items have {first_names(self.keys)}")


def _valid_entry(e: Any) -> bool:
    return (isinstance(e, dict) and isinstance(e.get("mean"), list) and isinstance(e.get("std"), list)
            and len(e["mean"]) == len(e["std"]) > 0 and isinstance(e.get("count"), int))


def make_builder(cls: type, kind: str) -> Callable[..., Dataset]:
    """A `build_dataset` builder for `cls`: `path` (relative to `base_dir`) plus `cls`'s keyword options."""
    params = inspect.signature(cls.__init__).parameters
    allowed = sorted(p for p in params if p not in ("self", "path", "split"))

    def build(options: dict[str, Any], split: str, base_dir: Path) -> Dataset:
        unknown = sorted(set(options) - set(allowed) - {"path"})
        if unknown:
            raise ValueError(f"{kind}: unknown option(s) {unknown}; expected path and any of {allowed}")
        rel = options.get("path")
        if not isinstance(rel, str) or not rel:
            raise ValueError(f"{kind}: path: missing; expected the data file, relative to the config's folder")
        kwargs = {k: v for k, v in options.items() if k != "path"}
        if isinstance(kwargs.get("stats_file"), str):
            kwargs["stats_file"] = Path(base_dir) / kwargs["stats_file"]
        return cls(Path(base_dir) / rel, split=split, **kwargs)

    build.__doc__ = f"Build a {cls.__name__} from a `[data] kind = \"{kind}\"` table."
    return build
