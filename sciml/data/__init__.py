"""Data layer: datasets over HDF5/NetCDF, readers for common formats, generators for PDE data.

`build_dataset(spec, split=..., base_dir=...)` turns the `[data]` table of a training config into a
`torch.utils.data.Dataset` whose items are dicts of tensors (e.g. {"x": ..., "y": ...}).
"""
from .registry import DATASET_KINDS, build_dataset, register_dataset
from .synthetic import RandomRegression

__all__ = ["DATASET_KINDS", "RandomRegression", "build_dataset", "register_dataset"]
