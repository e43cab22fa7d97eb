"""The Geo-FNO `.npy` benchmarks of the LSM paper (Pipe, Airfoil, Elasticity-G): files written in the
published layouts are read back item by item, with the paper's splits and output channels, clear errors
for missing files and mismatched arrays, and the masked loss of Elasticity-G."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sciml.data import DataError, GeoFNODataset, build_dataset
from sciml.training import train
from sciml.training.losses import make_loss


def mesh_files(directory, prefix, n=12, h=9, w=7, channels=5, seed=0):
    """X, Y (n, h, w) of a randomly sheared structured mesh and Q (n, channels, h, w), the Geo-FNO layout;
    Q[:, c] = (c + 1) * X + Y (a field the mesh determines)."""
    rng = np.random.default_rng(seed)
    s, t = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    shear = rng.uniform(-0.5, 0.5, (n, 1, 1))
    x = (s + shear * t).astype(np.float32)
    y = np.broadcast_to(t, (n, h, w)).astype(np.float32)
    q = np.stack([(c + 1) * x + y for c in range(channels)], axis=1).astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    for name, a in (("X", x), ("Y", y), ("Q", q)):
        np.save(directory / f"{prefix}_{name}.npy", a)
    return x, y, q


def test_pipe_items_are_mesh_coordinates_and_the_first_q_channel(tmp_path):
    x, y, q = mesh_files(tmp_path, "Pipe")
    ds = GeoFNODataset(tmp_path, "pipe", splits={"train": [0, 8], "val": [8, 12]}, split="val")
    assert len(ds) == 4
    item = ds[1]
    assert item["x"].shape == (2, 9, 7) and item["y"].shape == (9, 7)
    np.testing.assert_array_equal(item["x"][0].numpy(), x[9])
    np.testing.assert_array_equal(item["x"][1].numpy(), y[9])
    np.testing.assert_array_equal(item["y"].numpy(), q[9, 0])
    # stride r subsamples both mesh axes, as the LSM scripts' --h-down / --w-down
    sub = GeoFNODataset(tmp_path, "pipe", r=2, splits=(1.0, 0.0, 0.0))
    np.testing.assert_array_equal(sub[3]["y"].numpy(), q[3, 0, ::2, ::2])


def test_airfoil_reads_the_naca_subfolder_and_the_mach_channel(tmp_path):
    _, _, q = mesh_files(tmp_path / "naca", "NACA_Cylinder")
    ds = build_dataset({"kind": "geo-fno", "path": ".", "problem": "airfoil", "splits": (1.0, 0.0, 0.0)},
                       base_dir=tmp_path)
    np.testing.assert_array_equal(ds[5]["y"].numpy(), q[5, 4])  # Q[:, 4], the Mach number
    other = GeoFNODataset(tmp_path, "airfoil", output=2, splits=(1.0, 0.0, 0.0))
    np.testing.assert_array_equal(other[5]["y"].numpy(), q[5, 2])


def test_the_paper_splits_are_the_default(tmp_path):
    mesh_files(tmp_path, "Pipe", n=1210, h=3, w=3, channels=1)
    train_set = GeoFNODataset(tmp_path, "pipe")
    val_set = GeoFNODataset(tmp_path, "pipe", split="val")
    assert len(train_set) == 1000 and len(val_set) == 200
    assert val_set.indices[0] == 1000 and val_set.indices[-1] == 1199


def test_elasticity_grid_is_samples_last_with_a_mask(tmp_path):
    rng = np.random.default_rng(1)
    mask = (rng.random((6, 5, 30)) > 0.3).astype(np.float32)
    sigma = (rng.random((6, 5, 30)) * mask).astype(np.float32)
    (tmp_path / "Interp").mkdir()
    np.save(tmp_path / "Interp/Random_UnitCell_mask_10_interp.npy", mask)
    np.save(tmp_path / "Interp/Random_UnitCell_sigma_10_interp.npy", sigma)
    ds = GeoFNODataset(tmp_path, "elasticity-grid", splits={"train": [0, 20], "val": [20, 30]}, split="val")
    item = ds[3]
    np.testing.assert_array_equal(item["x"].numpy(), mask[:, :, 23])
    np.testing.assert_array_equal(item["y"].numpy(), sigma[:, :, 23])
    np.testing.assert_array_equal(item["mask"].numpy(), mask[:, :, 23])


def test_masked_relative_l2_ignores_predictions_outside_the_mask():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 1, *x.shape[-2:]), 2.0)

    mask = torch.zeros(2, 4, 4)
    mask[:, :2] = 1
    y = mask * 1.0  # the target is 1 inside, 0 outside; the model says 2 everywhere
    batch = {"x": mask, "y": y, "mask": mask}
    loss = make_loss("masked-relative-l2")(Constant(), batch)
    assert float(loss) == pytest.approx(1.0)  # |2 - 1| / |1| inside; outside masked away
    # a (B, 1, H, W) prediction of (B, H, W) targets is compared sample by sample, never broadcast
    assert float(make_loss("relative-l2")(Constant(), batch)) == pytest.approx(np.sqrt(40 / 8))
    with pytest.raises(ValueError, match=r"masked-relative-l2: the batch has no field 'mask' \(it has 'x', 'y'\)"):
        make_loss("masked-relative-l2")(Constant(), {"x": mask, "y": y})
    with pytest.raises(ValueError, match=r"prediction has shape \(2, 1, 4, 4\) but the target \(2, 3, 4, 4\)"):
        make_loss("mse")(Constant(), {"x": mask, "y": torch.zeros(2, 3, 4, 4)})


def test_errors_name_the_file_and_what_was_expected(tmp_path):
    with pytest.raises(DataError, match="problem: expected one of pipe, airfoil, elasticity-grid"):
        GeoFNODataset(tmp_path, "cylinder")
    with pytest.raises(FileNotFoundError, match="Pipe_X.npy"):
        GeoFNODataset(tmp_path, "pipe")
    x, y, q = mesh_files(tmp_path, "Pipe")
    with pytest.raises(DataError, match="output: channel 7 out of range: Q has 5 channels"):
        GeoFNODataset(tmp_path, "pipe", output=7)
    np.save(tmp_path / "Pipe_Q.npy", q[:, :, :, :3])
    with pytest.raises(DataError, match=r"Pipe_Q.npy: expected \(N, C, H, W\) = \(12, C, 9, 7\)"):
        GeoFNODataset(tmp_path, "pipe")
    with pytest.raises(ValueError, match="geo-fno: unknown option"):
        build_dataset({"kind": "geo-fno", "path": ".", "problem": "pipe", "channels": 2}, base_dir=tmp_path)


def test_a_model_trained_from_a_geo_fno_config_learns_the_mesh_to_field_map(tmp_path):
    mesh_files(tmp_path / "pipe", "Pipe", n=40, h=16, w=16, channels=1)
    config = {
        "model": {"name": "fno", "in_channels": 2, "out_channels": 1, "modes": 4, "width": 8, "layers": 2,
                  "padding": 4, "hidden": 16},
        "data": {"kind": "geo-fno", "path": str(tmp_path / "pipe"), "problem": "pipe",
                 "splits": {"train": [0, 32], "val": [32, 40]}, "val": True},
        "loss": {"name": "relative-l2"},
        "optimizer": {"name": "adam", "lr": 1e-2},
        "eval": {"every": 60, "metrics": ["loss"]},
        "train": {"steps": 60, "batch_size": 8, "log_every": 30, "seed": 0},
    }
    out = train(config, tmp_path / "run", progress=False)
    # Q = X + Y is linear in the inputs; a random network starts near relative error 1
    assert out["val_loss"] < 0.1, out


@pytest.mark.parametrize("name,shape", [("lsm-pipe", (2, 129, 129)), ("lsm-airfoil", (2, 221, 51)),
                                        ("lsm-elasticity-grid", (41, 41))])
def test_the_shipped_geo_fno_configs_fit_their_data(name, shape):
    """Each config's patch and padding fit its mesh (padded to 16 patches per axis) and its output has
    the shape of the target items (a narrow width here, to keep it quick)."""
    from pathlib import Path

    from sciml._toml import read_toml
    from sciml.models import build_model

    _, data = read_toml(Path(__file__).resolve().parents[1] / "configs" / f"{name}.toml")
    model = build_model(**{**data["model"], "width": 8}).eval()
    grid = shape[-2:]
    assert [(s + p) // q for s, p, q in zip(grid, model.pad, model.patch)] == [16, 16]
    with torch.no_grad():
        out = model(torch.rand(2, *shape))
    assert out.reshape(2, *grid).shape == (2, *grid) and torch.isfinite(out).all()
