"""Autoregressive training data and loss (the FNO / LSM Navier-Stokes setup): `TimeWindows` cuts
input/target states from stored trajectories, "rollout-relative-l2" trains through the rollout and
"rollout-full-l2" is the papers' metric; checked on trajectories whose exact next state is known."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from sciml.data import HDF5Dataset, TimeWindows, build_dataset
from sciml.models import build_model
from sciml.training import train
from sciml.training.losses import rollout_full_l2, rollout_relative_l2


def shifted_trajectories(path, n=12, size=16, steps=8, seed=0):
    """u (n, size, size, steps), time last: state t is the first one (a smooth random periodic field) rolled
    by t cells along the last axis."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(size) * size
    low = (np.abs(k)[:, None] <= 3) & (np.abs(k)[None, :] <= 3)
    spectrum = (rng.standard_normal((n, size, size)) + 1j * rng.standard_normal((n, size, size))) * low
    u0 = np.fft.ifft2(spectrum).real.astype(np.float32)
    u0 /= u0.std(axis=(1, 2), keepdims=True)
    u = np.stack([np.roll(u0, t, axis=-1) for t in range(steps)], axis=-1)
    with h5py.File(path, "w") as f:
        f["u"] = u
    return u


class Shift(nn.Module):
    """The exact one-step model of `shifted_trajectories`: the latest state rolled by one cell."""

    def forward(self, x):
        return torch.roll(x[:, -1:], 1, dims=-1)


def test_time_windows_cut_input_and_target_states(tmp_path):
    u = shifted_trajectories(tmp_path / "u.h5")
    ds = TimeWindows(HDF5Dataset(tmp_path / "u.h5", {"u": "u"}, splits=(1.0, 0.0, 0.0)), "u", input=3, output=4, start=1)
    item = ds[2]
    assert item["x"].shape == (3, 16, 16) and item["y"].shape == (4, 16, 16)
    np.testing.assert_array_equal(item["x"].numpy(), np.moveaxis(u[2, :, :, 1:4], -1, 0))
    np.testing.assert_array_equal(item["y"].numpy(), np.moveaxis(u[2, :, :, 4:8], -1, 0))
    # from a [data] table: any kind takes `window`
    spec = {"kind": "hdf5", "path": "u.h5", "fields": {"u": "u"}, "splits": {"train": [0, 10], "val": [10, 12]},
            "window": {"field": "u", "input": 2, "output": 3}}
    val = build_dataset(spec, split="val", base_dir=tmp_path)
    assert len(val) == 2
    np.testing.assert_array_equal(val[1]["y"].numpy(), np.moveaxis(u[11, :, :, 2:5], -1, 0))


@pytest.mark.parametrize("window,message", [
    ({"field": "v", "input": 2, "output": 2}, "window.field: the items have no field 'v'"),
    ({"field": "u", "input": 5, "output": 4}, "start + input + output = 9"),
    ({"field": "u", "input": 0, "output": 2}, "window.input: expected an integer >= 1"),
    ({"field": "u", "input": 2, "output": 2, "axis": 5}, "window.axis: 5 is out of range"),
    ({"field": "u", "input": 2, "outputs": 2}, "unknown key(s) ['outputs']"),
])
def test_window_errors_name_the_key(tmp_path, window, message):
    shifted_trajectories(tmp_path / "u.h5")
    spec = {"kind": "hdf5", "path": "u.h5", "fields": {"u": "u"}, "window": window}
    with pytest.raises(ValueError) as err:
        build_dataset(spec, base_dir=tmp_path)
    assert message in str(err.value)


def test_rollout_loss_is_zero_for_the_exact_model_and_one_for_zero(tmp_path):
    shifted_trajectories(tmp_path / "u.h5")
    ds = TimeWindows(HDF5Dataset(tmp_path / "u.h5", {"u": "u"}, splits=(1.0, 0.0, 0.0)), "u", input=3, output=5)
    batch = {k: torch.stack([ds[i][k] for i in range(4)]) for k in ("x", "y")}
    assert float(rollout_relative_l2(Shift(), batch)) < 1e-6
    assert float(rollout_full_l2(Shift(), batch)) < 1e-6

    class Zero(nn.Module):
        def forward(self, x):
            return torch.zeros_like(x[:, :1])

    assert float(rollout_relative_l2(Zero(), batch)) == pytest.approx(1.0, abs=1e-6)
    # the persistence model (repeat the last state) against the float64 recomputation of both definitions
    class Persist(nn.Module):
        def forward(self, x):
            return x[:, -1:]

    x, y = batch["x"].double(), batch["y"].double()
    err = (x[:, -1:] - y).flatten(2).norm(dim=2) / y.flatten(2).norm(dim=2)  # (B, T_out)
    full = (x[:, -1:] - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)
    assert float(rollout_relative_l2(Persist(), batch)) == pytest.approx(float(err.mean(0).mean()), rel=1e-5)
    assert float(rollout_full_l2(Persist(), batch)) == pytest.approx(float(full.mean()), rel=1e-5)


def test_training_through_the_rollout_reduces_the_full_rollout_error(tmp_path):
    shifted_trajectories(tmp_path / "u.h5", n=24)
    config = {
        "model": {"name": "fno", "in_channels": 2, "out_channels": 1, "modes": 8, "width": 8, "layers": 2,
                  "padding": 0, "hidden": 16},
        "data": {"kind": "hdf5", "path": str(tmp_path / "u.h5"), "fields": {"u": "u"},
                 "splits": {"train": [0, 20], "val": [20, 24]}, "window": {"field": "u", "input": 2, "output": 3},
                 "val": True},
        "loss": {"name": "rollout-relative-l2"},
        "optimizer": {"name": "adam", "lr": 1e-2},
        "eval": {"every": 30, "metrics": ["rollout-full-l2"]},
        "train": {"steps": 60, "batch_size": 4, "log_every": 30, "seed": 0},
    }
    torch.manual_seed(0)
    model = build_model(**config["model"])
    with torch.no_grad():
        val = build_dataset({k: v for k, v in config["data"].items() if k != "val"}, split="val")
        batch = {k: torch.stack([val[i][k] for i in range(len(val))]) for k in ("x", "y")}
        before = float(rollout_full_l2(model.eval(), batch))
    out = train(config, tmp_path / "run", progress=False)
    after = out["val_rollout-full-l2"]
    # measured: 1.04 before (a random network) -> 0.14 after 60 steps; require a factor of 3
    assert after < before / 3, (before, after)


def test_lsm_solver_rolls_a_one_step_model_out():
    import sciml
    from sciml.models import LSM
    from sciml.models.lsm import rollout
    from sciml.pde import Grid
    from sciml.problems import PDEProblem

    torch.manual_seed(0)
    model = LSM(in_channels=3, width=8, hidden=16, norm="instance", padding=[16, 16]).eval()
    grid = Grid(lower=(0, 0), upper=(1, 1), points=(16, 16), bc="periodic")
    history = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = rollout(model, history, 4)
    one = sciml.solve(PDEProblem(grid, source=history[0], exact=ref[0].double()), "lsm", model=model, inputs=["source"],
                      rollout_steps=4)
    assert one.x.shape == (4, 16, 16) and one.converged
    torch.testing.assert_close(one.x, ref[0].double(), rtol=1e-5, atol=1e-6)
    assert one.info["rel_l2_error"] < 1e-5
    # a batch, with the exact states of each trajectory (B, steps, *grid); the error is the worst trajectory's
    exact = ref.double() * torch.tensor([1.0, 1.25], dtype=torch.float64).reshape(2, 1, 1, 1)
    batch = sciml.solve(PDEProblem(grid, source=history, exact=exact), "lsm", model=model, inputs=["source"],
                        rollout_steps=4)
    assert batch.x.shape == (2, 4, 16, 16)
    torch.testing.assert_close(batch.x, ref.double(), rtol=1e-5, atol=1e-6)
    assert batch.info["rel_l2_error"] == pytest.approx(0.2, abs=1e-5)  # |x - 1.25 x| / |1.25 x|
    with pytest.raises(ValueError, match=r"field 'exact' must hold the exact future states as a tensor "
                                         r"\(rollout_steps, 16, 16\)"):
        sciml.solve(PDEProblem(grid, source=history, exact=torch.zeros(2, 4, 8, 8)), "lsm", model=model,
                    inputs=["source"], rollout_steps=4)
    with pytest.raises(ValueError, match="rollout_steps must be an integer >= 1"):
        sciml.solve(PDEProblem(grid, source=history[0]), "lsm", model=model, inputs=["source"], rollout_steps=0)
    with pytest.raises(ValueError, match="inputs must name the one field"):
        sciml.solve(PDEProblem(grid, source=history[0], a=1.0), "lsm", model=model, inputs=["source", "a"],
                    rollout_steps=2)
    with pytest.raises(ValueError, match="feeds its predictions back"):
        sciml.solve(PDEProblem(grid, source=history[0]), "lsm", model=model, inputs=["source"], rollout_steps=2,
                    normalizer={"fields": {"x": {"mean": [0.0], "std": [2.0]}}})
    with pytest.raises(ValueError, match=r"must hold the last states as a tensor \(T_in, 16, 16\)"):
        sciml.solve(PDEProblem(grid, source=1.0), "lsm", model=model, inputs=["source"], rollout_steps=2)
    with pytest.raises(ValueError, match="expects in_channels=3"):
        sciml.solve(PDEProblem(grid, source=history[0, :2]), "lsm", model=model, inputs=["source"], rollout_steps=2)
