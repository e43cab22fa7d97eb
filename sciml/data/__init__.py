"""Data layer: datasets over HDF5/NetCDF, readers for common formats, generators for PDE data.

`build_dataset(spec, split=..., base_dir=...)` turns the `[data]` table of a training config into a
`torch.utils.data.Dataset` whose items are dicts of tensors (e.g. {"x": ..., "y": ...}).
"""
from .registry import DATASET_KINDS, build_dataset, register_dataset
from .synthetic import RandomRegression
from .base import DataError, FieldDataset
from .hdf5 import HDF5Dataset
from .netcdf import NetCDFDataset
from .radar import RadarTargets, extended_targets
from .readers import GeoFNODataset, MatDataset, PDEBenchDataset, PoseidonDataset
from .splits import split_indices
from .windows import TimeWindows

__all__ = ["DATASET_KINDS", "DataError", "FieldDataset", "GeoFNODataset", "HDF5Dataset", "MatDataset", "NetCDFDataset",
           "PDEBenchDataset", "PoseidonDataset", "RadarTargets", "RandomRegression", "TimeWindows", "build_dataset",
           "extended_targets", "register_dataset", "split_indices"]
