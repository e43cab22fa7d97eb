"""The dataset layer: HDF5/NetCDF datasets, splits, normalisation statistics, DataLoader workers, and
the readers for FNO .mat, PDEBench and Poseidon files, each on tiny files written here."""
import json
import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sciml.data import (DATASET_KINDS, DataError, FieldDataset, HDF5Dataset, MatDataset, NetCDFDataset,
                        PDEBenchDataset, PoseidonDataset, build_dataset, split_indices)
from sciml.data import normalization as norm_mod

N = 20


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.fixture
def h5(tmp_path):
    """A chunked `a` (N, 4, 5) and a nested `g/u` (N, 2, 4, 5) with per-channel offsets."""
    r = rng()
    a = r.normal(size=(N, 4, 5))
    u = r.normal(size=(N, 2, 4, 5)) * np.array([1.0, 3.0])[:, None, None] + np.array([-2.0, 5.0])[:, None, None]
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=a, chunks=(1, 4, 5), compression="gzip")
        f.create_dataset("g/u", data=u, chunks=(2, 2, 4, 5))
        f["short"] = a[:7]
        f["scalar"] = 1.0
    return path, a, u


def items(ds):
    return [ds[i] for i in range(len(ds))]


# ---- HDF5Dataset: round trips -------------------------------------------------------------------
def test_hdf5_round_trip_every_split(h5):
    path, a, u = h5
    seen = []
    for split, rows in (("train", range(0, 16)), ("val", range(16, 18)), ("test", range(18, 20))):
        ds = HDF5Dataset(path, {"x": "a", "y": "g/u"}, split=split, dtype="float64")
        assert len(ds) == len(rows) and ds.keys == ("x", "y")
        for i, row in enumerate(rows):
            item = ds[i]
            assert set(item) == {"x", "y"} and item["x"].dtype == torch.float64
            np.testing.assert_array_equal(item["x"].numpy(), a[row])
            np.testing.assert_array_equal(item["y"].numpy(), u[row])
        seen += list(ds.indices)
    assert sorted(seen) == list(range(N))
    ds = HDF5Dataset(path, ["a"])  # a list of names: aliases = names; default float32
    assert ds[-1]["a"].dtype == torch.float32 and torch.allclose(ds[-1]["a"], torch.tensor(a[15], dtype=torch.float32))
    assert ds.shapes == {"a": (4, 5)}
    with pytest.raises(IndexError):
        ds[16]


def test_split_fractions_sizes_disjoint_and_deterministic():
    for n in (10, 17, 100, 1001):
        parts = {s: split_indices(n, (0.8, 0.1, 0.1), s) for s in ("train", "val", "test")}
        assert sum(map(len, parts.values())) == n
        assert np.array_equal(np.concatenate(list(parts.values())), np.arange(n))  # contiguous blocks in order
        assert abs(len(parts["train"]) - 0.8 * n) <= 1 and abs(len(parts["val"]) - 0.1 * n) <= 1
    assert len(split_indices(100, (0.5, 0.2), "test")) == 0  # two fractions: no test split
    assert len(split_indices(100, (0.5, 0.2, 0.1), "train")) == 50  # sum < 1: the tail is unused
    shuffled = {s: split_indices(100, (0.8, 0.1, 0.1), s, shuffle=True, seed=3) for s in ("train", "val", "test")}
    assert sorted(np.concatenate(list(shuffled.values()))) == list(range(100))
    assert all(np.all(np.diff(v) > 0) for v in shuffled.values())  # sorted within a split
    assert not np.array_equal(shuffled["val"], np.arange(80, 90))
    again = split_indices(100, (0.8, 0.1, 0.1), "val", shuffle=True, seed=3)
    other = split_indices(100, (0.8, 0.1, 0.1), "val", shuffle=True, seed=4)
    assert np.array_equal(again, shuffled["val"]) and not np.array_equal(other, shuffled["val"])


def test_split_ranges():
    ranges = {"train": [10, 20], "val": [0, 5], "test": [5, 10]}
    assert list(split_indices(20, ranges, "val")) == [0, 1, 2, 3, 4]
    assert list(split_indices(20, ranges, "train")) == list(range(10, 20))
    assert len(split_indices(20, {"train": [0, 10]}, "test")) == 0  # left out: empty
    with pytest.raises(ValueError, match=r"splits: ranges of 'train' \[0, 10\] and 'val' \[5, 12\] overlap"):
        split_indices(20, {"train": [0, 10], "val": [5, 12]}, "train")
    with pytest.raises(ValueError, match=r"splits.test: range \[15, 25\) goes past the 20 samples"):
        split_indices(20, {"test": [15, 25]}, "test")
    with pytest.raises(ValueError, match="shuffle: applies to fractional splits only"):
        split_indices(20, ranges, "train", shuffle=True)
    with pytest.raises(ValueError, match="splits.valid: unknown split"):
        split_indices(20, {"valid": [0, 2]}, "train")


@pytest.mark.parametrize("splits, match", [
    ((0.8, 0.3, 0.1), "sum to 1.2 > 1"),
    ((0.8, -0.1, 0.3), r"each fraction must be in \[0, 1\]"),
    ((0.8,), "expected 3 fractions"),
    ("0.8", "expected 3 fractions"),
    ({"train": [5, 2]}, r"splits.train: expected 0 <= start <= stop, got \[5, 2\]"),
])
def test_bad_splits_name_file_and_key(h5, splits, match):
    path = h5[0]
    with pytest.raises(ValueError, match=match) as err:
        HDF5Dataset(path, {"x": "a"}, splits=splits)
    assert str(err.value).startswith(f"{path}: splits")


def test_shuffled_split_through_dataset(h5):
    path, a, _ = h5
    ds = HDF5Dataset(path, {"x": "a"}, split="test", shuffle=True, seed=7, dtype="float64")
    expected = np.sort(np.random.default_rng(7).permutation(N)[18:20])
    assert list(ds.indices) == list(expected)
    np.testing.assert_array_equal(ds[1]["x"].numpy(), a[expected[1]])


# ---- normalisation ------------------------------------------------------------------------------
def test_normalization_stats_are_train_mean_std_and_cached(h5, monkeypatch):
    path, a, u = h5
    ds = HDF5Dataset(path, {"x": "a", "y": "g/u"}, split="val", normalize=["x", "y"], dtype="float64")
    train_a, train_u = a[:16], u[:16]
    assert ds.stats["x"]["mean"].item() == pytest.approx(train_a.mean(), rel=1e-12)
    assert ds.stats["x"]["std"].item() == pytest.approx(train_a.std(), rel=1e-12)
    assert ds.stats["y"]["mean"].item() == pytest.approx(train_u.mean(), rel=1e-12)
    assert ds.stats["x"]["count"] == train_a.size
    item = ds[0]  # val sample 16, normalised with the TRAIN statistics
    np.testing.assert_allclose(item["x"].numpy(), (a[16] - train_a.mean()) / train_a.std(), rtol=1e-12)
    np.testing.assert_allclose(ds.denormalize("y", item["y"]).numpy(), u[16], rtol=1e-12)
    stats_file = path.with_name("data.h5.stats.json")
    assert stats_file.is_file() and ds.stats_path == stats_file
    doc = json.loads(stats_file.read_text())
    assert len(doc["entries"]) == 2 and doc["source"]["size"] == path.stat().st_size

    calls = []
    real = FieldDataset._compute_stats
    monkeypatch.setattr(FieldDataset, "_compute_stats", lambda self, *a: calls.append(a[0]) or real(self, *a))
    again = HDF5Dataset(path, {"x": "a", "y": "g/u"}, split="train", normalize=["y", "x"])
    assert calls == [] and again.stats["x"]["mean"] == ds.stats["x"]["mean"]  # reused from the file
    HDF5Dataset(path, {"x": "a"}, splits=(0.5, 0.25, 0.25), normalize="x")  # other train split: new entry
    assert calls == [["x"]] and len(json.loads(stats_file.read_text())["entries"]) == 3
    HDF5Dataset(path, {"x": "a"}, splits=(0.5, 0.25, 0.25), normalize="x")
    assert calls == [["x"]]
    # the cache is believed only while it matches: a tampered entry is used (proof of reuse) ...
    doc = json.loads(stats_file.read_text())
    for e in doc["entries"].values():
        e["mean"] = [123.0]
    stats_file.write_text(json.dumps(doc))
    assert HDF5Dataset(path, {"x": "a"}, normalize="x").stats["x"]["mean"].item() == 123.0
    # ... but rewriting the data file invalidates every entry
    ds.close()  # h5py: no writer while this process holds the file open for reading
    with h5py.File(path, "a") as f:
        f["a"][0] = a[0] + 1.0
    fresh = HDF5Dataset(path, {"x": "a"}, normalize="x")
    assert fresh.stats["x"]["mean"].item() == pytest.approx(train_a.mean() + 20 / train_a.size)


def test_normalization_per_channel_and_denormalize_batches(h5):
    path, _, u = h5
    ds = HDF5Dataset(path, {"y": "g/u"}, normalize=True, channel_axis=0, stats_file=False, dtype="float64")
    np.testing.assert_allclose(ds.stats["y"]["mean"].flatten().numpy(), u[:16].mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(ds.stats["y"]["std"].flatten().numpy(), u[:16].std(axis=(0, 2, 3)), rtol=1e-12)
    assert not path.with_name("data.h5.stats.json").exists()  # stats_file=False: nothing cached
    batch = next(iter(DataLoader(ds, batch_size=4)))["y"]
    assert abs(batch.mean(dim=(0, 2, 3))).max() < 1.0  # roughly centred per channel
    np.testing.assert_allclose(ds.denormalize("y", batch).numpy(), u[:4], rtol=1e-12)
    assert ds.denormalize("y", ds.normalize("y", torch.ones(2, 4, 5, dtype=torch.float64))).allclose(
        torch.ones(2, 4, 5, dtype=torch.float64))
    last = HDF5Dataset(path, {"y": "g/u"}, normalize="y", channel_axis=-3, stats_file=False)
    assert torch.equal(last.stats["y"]["mean"], ds.stats["y"]["mean"])
    with pytest.raises(ValueError, match=r"channel_axis: expected an axis of the 3-d items of 'y'"):
        HDF5Dataset(path, {"y": "g/u"}, normalize="y", channel_axis=3)


def test_stats_file_is_never_half_written(h5, monkeypatch):
    path, a, _ = h5
    stats_file = path.with_name("data.h5.stats.json")
    HDF5Dataset(path, {"x": "a"}, normalize="x")
    before = stats_file.read_text()

    def failing_dump(obj, f, **kw):
        f.write('{"format": "sciml-normalization-st')  # half a file, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(norm_mod.json, "dump", failing_dump)
    with pytest.warns(UserWarning, match="cannot write normalisation statistics"):
        ds = HDF5Dataset(path, {"x": "a"}, splits=(0.6, 0.2, 0.2), normalize="x")
    assert ds.stats["x"]["mean"].item() == pytest.approx(a[:12].mean())  # computed all the same
    assert stats_file.read_text() == before  # the old file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.h5", "data.h5.stats.json"]  # no temp left
    stats_file.unlink()
    with pytest.warns(UserWarning):
        HDF5Dataset(path, {"x": "a"}, normalize="x")
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.h5"]
    monkeypatch.undo()
    stats_file.write_text("{not json")  # a corrupt file is ignored and replaced
    with pytest.warns(UserWarning, match="unreadable normalisation statistics"):
        HDF5Dataset(path, {"x": "a"}, normalize="x")
    assert json.loads(stats_file.read_text())["format"] == norm_mod.FORMAT


# ---- DataLoader workers -------------------------------------------------------------------------
def test_dataloader_two_workers_match_one_process(h5):
    path, _, _ = h5
    ds = HDF5Dataset(path, {"x": "a", "y": "g/u"}, normalize=["x"])
    ds[0]  # the parent now holds an open handle; workers must open their own
    serial = list(DataLoader(ds, batch_size=3, num_workers=0))
    parallel = list(DataLoader(ds, batch_size=3, num_workers=2))
    assert len(serial) == len(parallel) == 6
    for s, p in zip(serial, parallel):
        assert s.keys() == p.keys() and all(torch.equal(s[k], p[k]) for k in s)
    clone = pickle.loads(pickle.dumps(ds))  # what spawn-started workers get: no handle inside
    assert clone._h is None and torch.equal(clone[5]["y"], ds[5]["y"])


# ---- build_dataset ------------------------------------------------------------------------------
def test_registered_kinds_and_build_from_config_table(h5):
    path, a, u = h5
    assert {"hdf5", "netcdf", "mat", "pdebench", "poseidon"} <= set(DATASET_KINDS)
    spec = {"kind": "hdf5", "path": "data.h5", "fields": {"x": "a", "y": "g/u"}, "normalize": ["x"],
            "splits": {"train": [0, 10], "val": [10, 15], "test": [15, 20]}, "dtype": "float64"}
    ds = build_dataset(spec, split="test", base_dir=path.parent)
    assert isinstance(ds, HDF5Dataset) and list(ds.indices) == list(range(15, 20))
    np.testing.assert_array_equal(ds[0]["y"].numpy(), u[15])
    assert ds.stats["x"]["mean"].item() == pytest.approx(a[:10].mean())
    with pytest.raises(ValueError, match=r"hdf5: unknown option\(s\) \['field'\]; expected path and any of"):
        build_dataset({"kind": "hdf5", "path": "data.h5", "field": {"x": "a"}}, base_dir=path.parent)
    with pytest.raises(ValueError, match="hdf5: path: missing"):
        build_dataset({"kind": "hdf5", "fields": {"x": "a"}}, base_dir=path.parent)
    with pytest.raises(FileNotFoundError, match="no such hdf5 file"):
        build_dataset({"kind": "hdf5", "path": "data.h5", "fields": {"x": "a"}}, base_dir=path.parent / "elsewhere")


# ---- errors ---------------------------------------------------------------------------------------
def test_hdf5_errors_name_file_key_and_expectation(h5, tmp_path):
    path = h5[0]
    with pytest.raises(FileNotFoundError, match="no such hdf5 file") as err:
        HDF5Dataset(tmp_path / "missing.h5", {"x": "a"})
    assert err.value.filename == str(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match=r"data.h5: fields.y: no dataset 'sol' in the file; expected one of its "
                                         r"datasets: 'a', 'g/u', 'scalar', 'short'"):
        HDF5Dataset(path, {"x": "a", "y": "sol"})
    with pytest.raises(ValueError, match=r"fields: fields have different sample counts: x \('a'\) 20, "
                                         r"y \('short'\) 7; expected the same number of samples along axis 0"):
        HDF5Dataset(path, {"x": "a", "y": "short"})
    with pytest.raises(ValueError, match=r"fields.s: dataset 'scalar' .* is not a numeric array with samples"):
        HDF5Dataset(path, {"s": "scalar"})
    with pytest.raises(ValueError, match=r"fields: expected a non-empty table alias"):
        HDF5Dataset(path, {})
    with pytest.raises(ValueError, match=r"normalize: unknown field 'z'; expected one of 'x'"):
        HDF5Dataset(path, {"x": "a"}, normalize="z")
    with pytest.raises(ValueError, match=r"normalize: needs a non-empty train split"):
        HDF5Dataset(path, {"x": "a"}, splits=(0.0, 0.5, 0.5), normalize="x")
    with pytest.raises(ValueError, match=r"dtype: expected one of float32"):
        HDF5Dataset(path, {"x": "a"}, dtype="int8")
    with pytest.raises(ValueError, match=r"split: unknown split 'training'"):
        HDF5Dataset(path, {"x": "a"}, split="training")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match=r"notes.h5: cannot open as HDF5"):
        HDF5Dataset(text, {"x": "a"})
    with pytest.raises(ValueError, match=r"fields: unknown field 'q'; items have 'x'"):
        HDF5Dataset(path, {"x": "a"}).denormalize("q", torch.zeros(1))
    assert isinstance(DataError("f", "k", "m"), ValueError) and str(DataError("f", "k", "m")) == "f: k: m"


# ---- NetCDF -------------------------------------------------------------------------------------
@pytest.fixture
def nc(tmp_path):
    import xarray as xr

    r = rng(1)
    a = r.normal(size=(N, 3, 4))
    u = r.normal(size=(3, 4, N)) + 2.0  # the sample dimension last
    path = tmp_path / "data.nc"
    xr.Dataset({"a": (("sample", "x", "y"), a), "u": (("x", "y", "sample"), u),
                "k": (("x",), np.arange(3.0)), "b": (("member", "x"), r.normal(size=(5, 3)))}).to_netcdf(
        path, engine="h5netcdf")
    return path, a, u


def test_netcdf_round_trip_normalization_and_kind(nc):
    path, a, u = nc
    ds = NetCDFDataset(path, {"x": "a", "y": "u"}, split="test", normalize="y", dtype="float64")
    assert len(ds) == 2 and list(ds.indices) == [18, 19]
    np.testing.assert_array_equal(ds[0]["x"].numpy(), a[18])
    train_u = u[..., :16]
    assert ds.stats["y"]["mean"].item() == pytest.approx(train_u.mean(), rel=1e-12)
    assert ds.stats["y"]["std"].item() == pytest.approx(train_u.std(), rel=1e-12)
    np.testing.assert_allclose(ds.denormalize("y", ds[1]["y"]).numpy(), u[..., 19], rtol=1e-12)
    built = build_dataset({"kind": "netcdf", "path": "data.nc", "fields": {"x": "a"}, "sample_dim": "sample"},
                          split="val", base_dir=path.parent)
    assert len(built) == 2 and torch.allclose(built[0]["x"], torch.tensor(a[16], dtype=torch.float32))
    serial = list(DataLoader(ds, batch_size=1))
    parallel = list(DataLoader(ds, batch_size=1, num_workers=2))
    assert all(torch.equal(s["y"], p["y"]) for s, p in zip(serial, parallel))


def test_netcdf_errors(nc, tmp_path):
    path = nc[0]
    with pytest.raises(FileNotFoundError, match="no such netcdf file"):
        NetCDFDataset(tmp_path / "nope.nc", {"x": "a"})
    with pytest.raises(ValueError, match=r"data.nc: fields.x: no variable 'alpha' in the file; expected one of its "
                                         r"variables: 'a', 'u', 'k', 'b'"):
        NetCDFDataset(path, {"x": "alpha"})
    with pytest.raises(ValueError, match=r"fields.x: variable 'k' has dims \('x',\); expected a 'sample' dimension"):
        NetCDFDataset(path, {"x": "k"})
    with pytest.raises(ValueError, match=r"different sample counts: x \('a'\) 20, y \('b'\) 5; expected the same "
                                         r"number of samples along each variable's first dimension"):
        NetCDFDataset(path, {"x": "a", "y": "b"}, sample_dim=None)


# ---- FNO .mat ------------------------------------------------------------------------------------
def test_mat_v5_darcy_with_stride(tmp_path):
    import scipy.io

    r = rng(2)
    coeff, sol = r.normal(size=(10, 9, 9)), r.normal(size=(10, 9, 9))
    path = tmp_path / "darcy.mat"
    scipy.io.savemat(path, {"coeff": coeff, "sol": sol, "Kcoeff": np.ones((9, 9))})
    ds = MatDataset(path, r=2, split="val", dtype="float64", normalize="x")  # default fields coeff/sol
    assert ds.fields == {"x": "coeff", "y": "sol"} and not ds.v73 and len(ds) == 1
    np.testing.assert_array_equal(ds.denormalize("x", ds[0]["x"]).numpy().round(12), coeff[8, ::2, ::2].round(12))
    np.testing.assert_array_equal(ds[0]["y"].numpy(), sol[8, ::2, ::2])
    assert ds.shapes == {"x": (5, 5), "y": (5, 5)}
    assert ds.stats["x"]["mean"].item() == pytest.approx(coeff[:8, ::2, ::2].mean(), rel=1e-12)
    item = ds[0]
    item["y"].zero_()  # items are copies: the loaded variable is untouched
    assert ds[0]["y"].abs().sum() > 0
    parallel = list(DataLoader(MatDataset(path, r=2), batch_size=4, num_workers=2))
    assert torch.allclose(torch.cat([b["x"] for b in parallel]), torch.tensor(coeff[:8, ::2, ::2], dtype=torch.float32))
    built = build_dataset({"kind": "mat", "path": "darcy.mat", "fields": {"x": "coeff", "y": "sol"}, "r": 3},
                          split="train", base_dir=tmp_path)
    assert built[0]["x"].shape == (3, 3)
    with pytest.raises(ValueError, match=r"darcy.mat: fields.y: no variable 'u' in the file; expected one of its "
                                         r"variables: 'coeff', 'sol', 'Kcoeff'"):
        MatDataset(path, {"x": "coeff", "y": "u"})
    with pytest.raises(ValueError, match=r"different sample counts: x \('coeff'\) 10, y \('Kcoeff'\) 9"):
        MatDataset(path, {"x": "coeff", "y": "Kcoeff"})
    with pytest.raises(ValueError, match=r"darcy.mat: r: expected a positive integer stride, got 0"):
        MatDataset(path, r=0)
    with pytest.raises(FileNotFoundError, match="no such MATLAB .mat file"):
        MatDataset(tmp_path / "none.mat")
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"junk.mat: cannot read as a MATLAB .mat file"):
        MatDataset(junk)


def write_mat73(path, **arrays):
    """A MATLAB v7.3-like file: HDF5 with a 512-byte userblock holding MATLAB's 128-byte header, each
    variable a top-level dataset with a MATLAB_class attribute, stored with its axes reversed
    (MATLAB is column-major)."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=np.asarray(value).T).attrs["MATLAB_class"] = np.bytes_("double")
        f.create_group("#refs#")
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.write(header)


def test_mat_v73_navier_stokes_transposed_with_stride(tmp_path):
    import scipy.io.matlab

    r = rng(3)
    a, u = r.normal(size=(6, 8, 8)), r.normal(size=(6, 8, 8, 3))  # MATLAB sizes: N x 64 x 64 (x T)
    path = tmp_path / "ns_V1e-3_N5000_T50.mat"
    write_mat73(path, a=a, u=u)
    assert scipy.io.matlab.matfile_version(str(path)) == (2, 0)  # scipy agrees: a v7.3 file
    with h5py.File(path, "r") as f:
        assert f["u"].shape == (3, 8, 8, 6)  # as stored: reversed
    ds = MatDataset(path, r=2, splits={"train": [0, 4], "test": [4, 6]}, split="test", dtype="float64")
    assert ds.v73 and ds.fields == {"x": "a", "y": "u"} and len(ds) == 2
    np.testing.assert_array_equal(ds[0]["x"].numpy(), a[4, ::2, ::2])
    np.testing.assert_array_equal(ds[1]["y"].numpy(), u[5, ::2, ::2, :])  # time is not strided
    ds3 = MatDataset(path, {"y": "u"}, spatial_dims=3, dtype="float64")
    np.testing.assert_array_equal(ds3[0]["y"].numpy(), u[0])
    serial = list(DataLoader(ds, batch_size=1))
    parallel = list(DataLoader(ds, batch_size=1, num_workers=2))
    assert all(torch.equal(s["y"], p["y"]) for s, p in zip(serial, parallel))
    with pytest.raises(ValueError, match=r"spatial_dims: 4 exceeds the 3 axes of a sample of 'u'"):
        MatDataset(path, {"y": "u"}, spatial_dims=4)
    with pytest.raises(ValueError, match=r"fields.x: no variable 'coeff' in the file; expected one of its variables: "
                                         r"'a', 'u'"):
        MatDataset(path, {"x": "coeff"})


# ---- PDEBench -------------------------------------------------------------------------------------
def test_pdebench_tensor_layout_1d_and_darcy(tmp_path):
    r = rng(4)
    u = r.normal(size=(10, 9, 16))  # (N, T, X)
    path = tmp_path / "1D_Advection_Sols_beta0.1.hdf5"
    with h5py.File(path, "w") as f:
        f["tensor"] = u
        f["x-coordinate"] = np.linspace(0, 1, 16)
        f["t-coordinate"] = np.linspace(0, 2, 10)  # one more than time steps, as in PDEBench files
    ds = PDEBenchDataset(path, dtype="float64")
    assert ds.layout == "tensor" and ds.fields == {"u": "tensor"}
    np.testing.assert_array_equal(ds[3]["u"].numpy(), u[3])
    pairs = PDEBenchDataset(path, initial_step=2, r=2, r_t=2, split="val", dtype="float64")
    assert pairs.keys == ("x", "y") and len(pairs) == 1
    np.testing.assert_array_equal(pairs[0]["x"].numpy(), u[8, 0:4:2, ::2])
    np.testing.assert_array_equal(pairs[0]["y"].numpy(), u[8, 4::2, ::2])
    assert torch.equal(pairs.coords["x"], torch.tensor(np.linspace(0, 1, 16)[::2]))
    assert len(pairs.coords["t"]) == 5
    with pytest.raises(ValueError, match=r"initial_step: 9 leaves no target step: the data has 9 time steps"):
        PDEBenchDataset(path, initial_step=9)

    nu, sol = r.normal(size=(10, 8, 8)), r.normal(size=(10, 1, 8, 8))
    darcy = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    with h5py.File(darcy, "w") as f:
        f["nu"], f["tensor"] = nu, sol
        f["x-coordinate"], f["y-coordinate"] = np.arange(8.0), np.arange(8.0)
    dd = PDEBenchDataset(darcy, r=2, dtype="float64", normalize=["x", "y"])
    assert dd.fields == {"x": "nu", "y": "tensor"}
    np.testing.assert_allclose(dd.denormalize("x", dd[1]["x"]).numpy(), nu[1, ::2, ::2], rtol=1e-12)
    np.testing.assert_allclose(dd.denormalize("y", dd[1]["y"]).numpy(), sol[1, :, ::2, ::2], rtol=1e-12)
    assert dd.stats["y"]["mean"].item() == pytest.approx(sol[:8, :, ::2, ::2].mean(), rel=1e-12)
    assert set(dd.coords) == {"x", "y"}
    with pytest.raises(ValueError, match=r"initial_step: needs time-dependent fields; 'x' \('nu'\) have no time axis"):
        PDEBenchDataset(darcy, initial_step=1)


def test_pdebench_cfd_layout_stacks_channels(tmp_path):
    r = rng(5)
    arrays = {k: r.normal(size=(5, 6, 8)) for k in ("density", "pressure", "Vx")}
    path = tmp_path / "1D_CFD_Rand_Eta0.01_Zeta0.01_periodic_Train.hdf5"
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v
        f["x-coordinate"] = np.linspace(0, 1, 8)
    ds = PDEBenchDataset(path, initial_step=2, dtype="float64")
    assert ds.layout == "cfd" and list(ds.fields) == ["density", "pressure", "Vx"]
    stacked = np.stack([arrays[k][1] for k in ("density", "pressure", "Vx")], axis=-1)  # (T, X, V)
    np.testing.assert_array_equal(ds[1]["x"].numpy(), stacked[:2])
    np.testing.assert_array_equal(ds[1]["y"].numpy(), stacked[2:])
    built = build_dataset({"kind": "pdebench", "path": path.name, "fields": {"rho": "density"}}, base_dir=tmp_path)
    assert built.keys == ("rho",) and built[0]["rho"].shape == (6, 8)


def test_pdebench_seed_layout(tmp_path):
    r = rng(6)
    data = r.normal(size=(6, 5, 4, 4, 2))  # per seed: (T, X, Y, V)
    path = tmp_path / "2D_diff-react_NA_NA.h5"
    with h5py.File(path, "w") as f:
        for i in range(6):
            g = f.create_group(f"{i:04d}")
            g["data"] = data[i]
            g["grid/x"], g["grid/y"], g["grid/t"] = np.arange(4.0), np.arange(4.0), np.arange(5.0)
    ds = PDEBenchDataset(path, split="test", splits=(0.5, 0.0, 0.5), dtype="float64")
    assert ds.layout == "seed" and ds.fields == {"u": "data"} and list(ds.indices) == [3, 4, 5]
    np.testing.assert_array_equal(ds[0]["u"].numpy(), data[3])
    pairs = PDEBenchDataset(path, initial_step=2, r=2, normalize="y", dtype="float64")
    np.testing.assert_array_equal(pairs.denormalize("y", pairs[2]["y"]).numpy().round(12),
                                  data[2, 2:, ::2, ::2, :].round(12))
    assert pairs.stats["y"]["mean"].item() == pytest.approx(data[:5, 2:, ::2, ::2].mean(), rel=1e-12)  # train: 5 of 6
    assert torch.equal(pairs.coords["y"], torch.tensor([0.0, 2.0], dtype=torch.float64))
    parallel = list(DataLoader(pairs, batch_size=2, num_workers=2))
    assert torch.equal(torch.cat([b["x"] for b in parallel]), torch.stack([pairs[i]["x"] for i in range(len(pairs))]))
    ds.close(), pairs.close()
    with h5py.File(path, "a") as f:
        del f["0004/data"]
        f["0004/u"] = data[4]
    with pytest.raises(ValueError, match=r"fields.u: seed group '0004' has no dataset 'data'; expected every seed group"):
        PDEBenchDataset(path)
    with pytest.raises(FileNotFoundError, match="no such PDEBench HDF5 file"):
        PDEBenchDataset(tmp_path / "absent.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["velocity"] = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"other.h5: not a PDEBench file: expected a 'tensor' dataset"):
        PDEBenchDataset(other)


# ---- Poseidon -------------------------------------------------------------------------------------
def write_poseidon(path, n=10, t=5, c=3, s=4, seed=7):
    import xarray as xr

    r = rng(seed)
    velocity = r.normal(size=(n, t, c, s, s)) + np.arange(c)[:, None, None]
    wave_c = r.uniform(1, 2, size=(n, s, s))
    xr.Dataset({"velocity": (("sample", "time", "channel", "x", "y"), velocity),
                "c": (("sample", "x", "y"), wave_c)}).to_netcdf(path, engine="h5netcdf")
    return velocity, wave_c


def test_poseidon_time_pairs(tmp_path):
    path = tmp_path / "NS-PwC.nc"
    v, wave_c = write_poseidon(path)
    ds = PoseidonDataset(path, max_num_time_steps=2, time_step_size=2, channels=[0, 1], extra={"c": "c"},
                         dtype="float64")
    pairs = [(0, 0), (0, 2), (0, 4), (2, 2), (2, 4), (4, 4)]  # scOT's all2all with M = 2, s = 2
    assert ds.variable == "velocity" and ds.keys == ("x", "y", "t", "c") and len(ds) == 8 * len(pairs)
    item = ds[1 * len(pairs) + 4]  # trajectory 1, pair (2, 4)
    np.testing.assert_array_equal(item["x"].numpy(), v[1, 2, :2])
    np.testing.assert_array_equal(item["y"].numpy(), v[1, 4, :2])
    assert item["t"].item() == pytest.approx(2 / 4)  # lead time / last time index
    np.testing.assert_array_equal(item["c"].numpy(), wave_c[1])
    fixed = PoseidonDataset(path, max_num_time_steps=2, time_step_size=1, fix_input_to_time_step=1, split="test")
    assert [fixed._pair_list[k] for k in range(2)] == [(1, 2), (1, 3)] and len(fixed) == 2 * 1
    only = PoseidonDataset(path, max_num_time_steps=4, time_step_size=1, allowed_time_transitions=[1])
    assert only._pair_list == [(0, 1), (1, 2), (2, 3), (3, 4)]

    norm = PoseidonDataset(path, max_num_time_steps=2, time_step_size=2, normalize=True, channel_axis=0,
                           extra={"c": "c"}, dtype="float64")
    used = v[:8][:, [0, 2, 4]]  # train trajectories at the times the pairs use
    for key in ("x", "y"):  # x and y share statistics
        np.testing.assert_allclose(norm.stats[key]["mean"].flatten().numpy(), used.mean(axis=(0, 1, 3, 4)), rtol=1e-12)
        np.testing.assert_allclose(norm.stats[key]["std"].flatten().numpy(), used.std(axis=(0, 1, 3, 4)), rtol=1e-12)
    assert "t" not in norm.stats and norm.stats["c"]["mean"].shape == (4, 1)  # channel_axis 0 of (x, y) items
    np.testing.assert_allclose(norm.stats["c"]["mean"].flatten().numpy(), wave_c[:8].mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(norm.denormalize("y", norm[5]["y"]).numpy(), v[0, 4], rtol=1e-12)
    serial = list(DataLoader(norm, batch_size=6))
    parallel = list(DataLoader(norm, batch_size=6, num_workers=2))
    assert all(torch.equal(a[k], b[k]) for a, b in zip(serial, parallel) for k in a)
    built = build_dataset({"kind": "poseidon", "path": "NS-PwC.nc", "max_num_time_steps": 4, "time_step_size": 1,
                           "splits": {"train": [0, 6], "val": [6, 8], "test": [8, 10]}}, split="val",
                          base_dir=tmp_path)
    assert len(built) == 2 * 15 and built[0]["x"].shape == (3, 4, 4)


def test_poseidon_steady_fields_and_errors(tmp_path):
    import xarray as xr

    r = rng(8)
    source, solution = r.normal(size=(10, 4, 4)), r.normal(size=(10, 4, 4))
    path = tmp_path / "Poisson-Gauss.nc"
    xr.Dataset({"source": (("sample", "x", "y"), source), "solution": (("sample", "x", "y"), solution)}).to_netcdf(
        path, engine="h5netcdf")
    ds = PoseidonDataset(path, fields={"x": "source", "y": "solution"}, split="val", dtype="float64")
    assert len(ds) == 1 and ds.keys == ("x", "y")
    np.testing.assert_array_equal(ds[0]["y"].numpy(), solution[8])
    with pytest.raises(ValueError, match=r"Poisson-Gauss.nc: variable: missing, and none of velocity, solution, data is "
                                         r"a \(sample, time, \[channel,\] x, y\) variable"):
        PoseidonDataset(path)
    traj = tmp_path / "NS-Sines.nc"
    write_poseidon(traj, t=5)
    with pytest.raises(ValueError, match=r"NS-Sines.nc: max_num_time_steps: 7 steps of 2 reach time index 14, but "
                                         r"'velocity' has 5 time steps"):
        PoseidonDataset(traj)
    with pytest.raises(ValueError, match=r"channels: \[3\] out of range for the 3 channels of 'velocity'"):
        PoseidonDataset(traj, max_num_time_steps=1, channels=[0, 3])
    with pytest.raises(ValueError, match=r"variable: no variable 'u' in the file; expected one of its variables"):
        PoseidonDataset(traj, "u")
    with pytest.raises(ValueError, match=r"normalize: unknown field 't'"):
        PoseidonDataset(traj, max_num_time_steps=1, normalize="t")
    with pytest.raises(ValueError, match=r"fields: give either variable"):
        PoseidonDataset(traj, "velocity", fields={"x": "c"})
    with pytest.raises(FileNotFoundError, match="no such Poseidon NetCDF file"):
        PoseidonDataset(tmp_path / "gone.nc")
