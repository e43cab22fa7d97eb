"""Readers for data in the layouts other codes publish, each a `FieldDataset` (items are dicts of
tensors; splits, normalisation and DataLoader workers work as for `HDF5Dataset`) and a registered
dataset kind:

| kind | class | format |
|---|---|---|
| `"mat"` | `MatDataset` | FNO / LSM `.mat` files, MATLAB v5 (scipy) and v7.3 (HDF5) |
| `"pdebench"` | `PDEBenchDataset` | PDEBench HDF5: `tensor` (+ `nu`), CFD variables, per-seed groups |
| `"poseidon"` | `PoseidonDataset` | Poseidon / scOT NetCDF: (sample, time, channel, x, y) trajectories |
| `"geo-fno"` | `GeoFNODataset` | Geo-FNO `.npy` benchmarks of the LSM paper: Pipe, Airfoil, Elasticity-G |
"""
from .geofno import GeoFNODataset
from .matlab import MatDataset
from .pdebench import PDEBenchDataset
from .poseidon import PoseidonDataset

__all__ = ["GeoFNODataset", "MatDataset", "PDEBenchDataset", "PoseidonDataset"]
