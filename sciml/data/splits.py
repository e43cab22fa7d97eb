"""Train/val/test split assignment: which samples of a file belong to which split.

Two ways to say it, both deterministic (the same indices on every call, process and rank):

* fractions `(train, val, test)` (or `(train, val)`, test then empty), each in [0, 1], summing to at
  most 1. The samples are cut into consecutive blocks at the boundaries `round(n * cumsum(fractions))`:
  with `(0.8, 0.1, 0.1)` and n = 100, train is samples 0-79, val 80-89, test 90-99. A sum below 1
  leaves the tail unused (a quick way to train on a subset).
  With `shuffle=True` the blocks are cut from the seeded permutation
  `numpy.random.default_rng(seed).permutation(n)` instead of 0..n-1, so membership is random but
  reproducible; indices inside a split are then sorted ascending (reads stay local; a DataLoader
  shuffles anyway).
* explicit index ranges `{"train": [0, 800], "val": [800, 900], "test": [900, 1000]}`: half-open
  `[start, stop)` ranges of raw sample indices, disjoint, within `[0, n]`. A split left out is empty.
  This reproduces other codes' conventions exactly, e.g. PDEBench's single-file loaders (test = the
  first 10 %) or Poseidon/scOT (train from 0, val and test the last `N_val + N_test` samples).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .registry import SPLITS


def split_error(file: Any, key: str, message: str) -> ValueError:
    from .base import DataError

    return DataError(file, key, message)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_splits(splits: Any, *, file: Any = "<data>", key: str = "splits") -> tuple[float, ...] | dict[str, tuple[int, int]]:
    """Validate a split specification (fractions or index ranges) without knowing the sample count.

    Returns the fractions as a tuple of 3 floats, or the ranges as `{split: (start, stop)}`.
    Raises `DataError` (a `ValueError`) naming `file` and `key` and what was expected.
    """
    if isinstance(splits, Mapping):
        out: dict[str, tuple[int, int]] = {}
        for name, rng in splits.items():
            if name not in SPLITS:
                raise split_error(file, f"{key}.{name}", f"unknown split; expected one of {', '.join(SPLITS)}")
            if (not isinstance(rng, Sequence) or isinstance(rng, str) or len(rng) != 2
                    or not all(_is_int(v) for v in rng)):
                raise split_error(file, f"{key}.{name}", f"expected a range [start, stop) of two integers, got {rng!r}")
            start, stop = int(rng[0]), int(rng[1])
            if not 0 <= start <= stop:
                raise split_error(file, f"{key}.{name}", f"expected 0 <= start <= stop, got [{start}, {stop}]")
            out[name] = (start, stop)
        ranges = sorted((r, n) for n, r in out.items() if r[0] < r[1])
        for (a, na), (b, nb) in zip(ranges, ranges[1:]):
            if b[0] < a[1]:
                raise split_error(file, key, f"ranges of {na!r} {list(a)} and {nb!r} {list(b)} overlap; expected disjoint ranges")
        return out
    expected = "3 fractions (train, val, test) in [0, 1] summing to at most 1, or a table of index ranges"
    if isinstance(splits, (str, bytes)) or not isinstance(splits, Sequence) or len(splits) not in (2, 3):
        raise split_error(file, key, f"expected {expected}, got {splits!r}")
    if not all(_is_number(v) and math.isfinite(v) and 0 <= v <= 1 for v in splits):
        raise split_error(file, key, f"expected {expected}; each fraction must be in [0, 1], got {list(splits)}")
    fractions = tuple(float(v) for v in splits) + (0.0,) * (3 - len(splits))
    if sum(fractions) > 1 + 1e-9:
        raise split_error(file, key, f"expected {expected}; these sum to {sum(fractions):g} > 1: {list(splits)}")
    return fractions


def split_indices(n: int, splits: Any = (0.8, 0.1, 0.1), split: str = "train", *, shuffle: bool = False,
                  seed: int = 0, file: Any = "<data>", key: str = "splits") -> np.ndarray:
    """Sample indices (int64, ascending) of `split` among `n` samples; see the module docstring.

    Raises:
        ValueError: bad split name, fractions or ranges (a range past `n`, overlapping ranges), or
            `shuffle` combined with explicit ranges. The message names `file` and `key`.
    """
    if split not in SPLITS:
        raise split_error(file, "split", f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if not _is_int(n) or n < 0:
        raise ValueError(f"sample count must be a non-negative integer, got {n!r}")
    spec = check_splits(splits, file=file, key=key)
    if isinstance(spec, dict):
        if shuffle:
            raise split_error(file, "shuffle", "applies to fractional splits only; explicit ranges select raw sample indices")
        for name, (start, stop) in spec.items():
            if stop > n:
                raise split_error(file, f"{key}.{name}", f"range [{start}, {stop}) goes past the {n} samples in the file")
        start, stop = spec.get(split, (0, 0))
        return np.arange(start, stop, dtype=np.int64)
    bounds = [0] + [int(round(n * c)) for c in np.cumsum(spec)]
    bounds = [min(b, n) for b in bounds]
    k = SPLITS.index(split)
    if shuffle:
        if not _is_int(seed):
            raise split_error(file, "seed", f"expected an integer, got {seed!r}")
        order = np.random.default_rng(int(seed)).permutation(n)
        return np.sort(order[bounds[k]:bounds[k + 1]]).astype(np.int64)
    return np.arange(bounds[k], bounds[k + 1], dtype=np.int64)
