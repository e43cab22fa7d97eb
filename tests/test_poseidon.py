"""Poseidon training and inference: the all2all dataset kind, the "scot" loss, fine-tuning helpers, the
"poseidon" solver and the sample-efficiency example's quick path."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import sciml
from sciml.data import build_dataset
from sciml.models.scot import ScOT
from sciml.models.scot_data import rollout
from sciml.models.scot_train import All2AllTrajectories, finetune_model, scot_loss, use_param_groups
from sciml.pde import Grid
from sciml.problems import PDEProblem
from sciml.solvers import SolverOptionError, make_solver
from sciml.training import Trainer

ROOT = Path(__file__).resolve().parents[1]


def tiny_scot(**kw) -> ScOT:
    torch.manual_seed(0)
    args = dict(image_size=8, patch_size=2, num_channels=1, num_out_channels=1, embed_dim=8, depths=[1, 1],
                num_heads=[2, 2], skip_connections=[1, 0], window_size=4, use_conditioning=True, drop_path_rate=0.0)
    args.update(kw)
    return ScOT(**args)


def write_trajectories(path: Path, n: int = 5, T: int = 4, size: int = 8) -> np.ndarray:
    """Synthetic file in the navier-stokes generator's layout: a (N, H, W) = t0, u (N, H, W, T) = t1..tT;
    the value of sample s at snapshot k is 100 s + k everywhere."""
    full = np.zeros((n, T + 1, size, size), np.float32)
    for s in range(n):
        for k in range(T + 1):
            full[s, k] = 100 * s + k
    with h5py.File(path, "w") as f:
        f["a"] = full[:, 0]
        f["u"] = np.moveaxis(full[:, 1:], 1, -1)
    return full


def test_all2all_dataset_pairs_and_lead_times(tmp_path):
    write_trajectories(tmp_path / "traj.h5", n=5, T=4)
    spec = {"kind": "scot-all2all", "path": "traj.h5", "splits": {"train": [0, 3], "test": [3, 5]}}
    ds = build_dataset(spec, split="train", base_dir=tmp_path)
    assert len(ds) == 3 * 15  # 5 snapshots -> 15 pairs (i <= j)
    seen = set()
    for k in range(len(ds)):
        item = ds[k]
        assert item["x"].shape == (1, 8, 8) and item["y"].shape == (1, 8, 8) and item["time"].ndim == 0
        s, i = divmod(int(item["x"][0, 0, 0]), 100)
        s2, j = divmod(int(item["y"][0, 0, 0]), 100)
        assert s == s2 and i <= j
        assert float(item["time"]) == pytest.approx((j - i) / 4)  # time_norm defaults to the longest pair
        seen.add((s, i, j))
    assert len(seen) == 45
    b = ds.batch([0, 16, 44])
    assert b["x"].shape == (3, 1, 8, 8) and torch.equal(b["time"], torch.stack([ds[k]["time"] for k in (0, 16, 44)]))
    # options: step / max_steps / time_norm / num_trajectories, and the test split
    ds2 = build_dataset({**spec, "step": 2, "max_steps": 2, "time_norm": 8, "num_trajectories": 2}, split="train",
                        base_dir=tmp_path)
    assert len(ds2) == 2 * 6
    assert {(int(ds2[k]["x"][0, 0, 0]) % 100, int(ds2[k]["y"][0, 0, 0]) % 100) for k in range(6)} == \
        {(0, 0), (0, 2), (0, 4), (2, 2), (2, 4), (4, 4)}
    assert float(ds2[2]["time"]) == pytest.approx(0.5)
    test = build_dataset(spec, split="test", base_dir=tmp_path)
    assert int(test[0]["x"][0, 0, 0]) == 300


def test_all2all_dataset_errors(tmp_path):
    write_trajectories(tmp_path / "traj.h5")
    base = {"kind": "scot-all2all", "path": "traj.h5"}
    with pytest.raises(ValueError, match="num_trajectories"):
        build_dataset({**base, "num_trajectories": 99}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="variable"):
        build_dataset({**base, "variable": "w"}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="max_steps"):
        build_dataset({**base, "max_steps": 9}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        build_dataset({**base, "stride": 2}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="layout"):
        build_dataset({**base, "layout": "NWH"}, base_dir=tmp_path)


def test_scot_loss_decreases_with_trainer():
    torch.manual_seed(0)
    u = torch.randn(4, 3, 1, 8, 8).cumsum(1) * 0.3 + 1.0
    ds = All2AllTrajectories(u)
    model = tiny_scot()
    cfg = {"train": {"steps": 12, "batch_size": 6, "seed": 0, "log_every": 1, "device": "cpu"},
           "optimizer": {"lr": 3e-3}}
    trainer = Trainer(cfg, model=model, train_data=ds, loss="scot")
    batch = ds.batch(range(len(ds)))
    with torch.no_grad():
        before = float(scot_loss(model, batch))
    trainer.fit()
    with torch.no_grad():
        after = float(scot_loss(model, batch))
    assert after < before


def test_train_config_builds_scot_from_model_table(tmp_path):
    write_trajectories(tmp_path / "traj.h5", n=4, T=2)
    cfg = {"model": {"name": "scot", "image_size": 8, "patch_size": 2, "num_channels": 1, "num_out_channels": 1,
                     "embed_dim": 8, "depths": [1, 1], "num_heads": [2, 2], "skip_connections": [1, 0],
                     "window_size": 4, "use_conditioning": True},
           "data": {"kind": "scot-all2all", "path": str(tmp_path / "traj.h5"),
                    "splits": {"train": [0, 3], "val": [3, 4]}, "val": True},
           "loss": {"name": "scot", "norm": "model"},
           "eval": {"every": 2, "metrics": ["loss", "scot-median-rel-l1"]},
           "train": {"steps": 2, "batch_size": 4, "device": "cpu"}}
    trainer = Trainer(cfg)
    assert isinstance(trainer.model, ScOT) and len(trainer.train_data) == 3 * 6
    summary = trainer.fit()
    assert np.isfinite(summary["val_scot-median-rel-l1"])


def test_model_loss_option_and_param_groups(tmp_path):
    u = torch.randn(2, 3, 1, 8, 8)
    ds = All2AllTrajectories(u)
    model = tiny_scot()
    b = ds.batch(range(4))
    assert scot_loss(model, b, norm="model").ndim == 0
    with pytest.raises(ValueError, match="norm"):
        scot_loss(model, b, norm="l3")
    model.save_pretrained(tmp_path / "pre")
    ft = finetune_model(tmp_path / "pre", replace_embedding_recovery=True)
    assert ft.training
    mine, theirs = ft.state_dict(), model.state_dict()
    kept = [k for k in mine if not k.startswith(("embeddings.patch_embeddings.", "patch_recovery."))]
    assert kept and all(torch.equal(mine[k], theirs[k]) for k in kept)
    assert not torch.equal(ft.patch_recovery.projection.weight, model.patch_recovery.projection.weight)
    trainer = Trainer({"train": {"steps": 2, "batch_size": 2}}, model=ft, train_data=ds, loss="scot")
    opt = use_param_groups(trainer, lr=1e-4, lr_embedding_recovery=1e-3, lr_time_embedding=5e-4)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["embedding_recovery"] == 1e-3 and lrs["time_embedding"] == 5e-4 and lrs["decay"] == 1e-4
    trainer.fit()


def problem(n=8, B=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    u0 = torch.randn((n, n) if B is None else (B, n, n), generator=g, dtype=torch.float64)
    return PDEProblem(Grid(lower=(0, 0), upper=(1, 1), points=(n, n), bc="periodic"), source=u0), u0


def test_poseidon_solver_matches_model(tmp_path):
    model = tiny_scot().eval()
    prob, u0 = problem(B=3)
    x = u0[:, None].float()
    with torch.no_grad():
        direct = model(x, torch.full((3,), 0.5)).output[:, 0]
        ar = rollout(model, x, 0.5, steps=2)[:, 0]
    sol = sciml.solve(prob, "poseidon", model=model, lead_time=0.5)
    assert sol.x.shape == (3, 8, 8)
    torch.testing.assert_close(sol.x.float(), direct, atol=1e-5, rtol=1e-5)
    sol2 = sciml.solve(prob, "poseidon", model=model, lead_time=0.5, ar_steps=2)
    torch.testing.assert_close(sol2.x.float(), ar, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(sol.x, sol2.x)
    # a single (unbatched) problem and a model directory in the official layout
    model.save_pretrained(tmp_path / "m")
    p1, v0 = problem()
    s1 = sciml.solve(p1, "poseidon", model=str(tmp_path / "m"), lead_time=0.5)
    with torch.no_grad():
        ref = model(v0[None, None].float(), 0.5).output[0, 0]
    assert s1.x.shape == (8, 8)
    torch.testing.assert_close(s1.x.float(), ref, atol=1e-5, rtol=1e-5)


def test_poseidon_solver_errors():
    model = tiny_scot()
    with pytest.raises(SolverOptionError, match="lead_time"):
        make_solver("poseidon", model=model, lead_time=0)
    with pytest.raises(SolverOptionError, match="ar_steps"):
        make_solver("poseidon", model=model, ar_steps=0)
    prob = PDEProblem(Grid(lower=(0, 0), upper=(1, 1), points=(8, 4), bc="periodic"), source=torch.zeros(8, 4))
    with pytest.raises(ValueError, match="square"):
        sciml.solve(prob, "poseidon", model=model)
    p, _ = problem()
    p2 = PDEProblem(p.grid, source=p.source, a=1.0)
    with pytest.raises(SolverOptionError, match="num_channels=1"):
        sciml.solve(p2, "poseidon", model=model, inputs=["source", "a"])
    with pytest.raises(SolverOptionError, match="scOT"):
        sciml.solve(p, "poseidon", model=torch.nn.Identity())


def _example():
    spec = importlib.util.spec_from_file_location("poseidon_finetune", ROOT / "examples" / "poseidon_finetune.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["poseidon_finetune"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_example_tiny_run(tmp_path):
    ex = _example()
    args = ex.parse_args(["--tiny", "--out", str(tmp_path / "run"), "--no-plot"])
    results = ex.run(args)
    table = results["table"]
    assert [r["samples"] for r in table] == args.samples
    for r in table:
        assert set(r) >= {"samples", "scratch", "finetuned"} and np.isfinite(r["scratch"]) and np.isfinite(r["finetuned"])
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["table"] == table
    assert (tmp_path / "run" / "pretrained" / "config.json").is_file()
    # the solve config serves the example's fine-tuned model (paths and grid size rewritten for the tiny run)
    from sciml import config as config_mod

    text = (ROOT / "solvers" / "poseidon-finetune.toml").read_text()
    assert "../out/poseidon_finetune/" in text and "points = [32, 32]" in text
    text = text.replace("../out/poseidon_finetune/", f"{tmp_path / 'run'}/").replace("points = [32, 32]", "points = [16, 16]")
    (tmp_path / "poseidon.toml").write_text(text)
    cfg = config_mod.load(tmp_path / "poseidon.toml")
    sol = sciml.solve(cfg.problem(), cfg.solver())
    u0 = torch.from_numpy(np.load(tmp_path / "run" / "test_initial.npy")).float()
    net = ScOT.from_pretrained(tmp_path / "run" / "finetuned")
    with torch.no_grad():
        ref = net(u0[None, None], 1.0).output[0, 0]
    assert sol.x.shape == (16, 16) and "rel_l2_error" in sol.info and sol.info["model"] == "ScOT"
    torch.testing.assert_close(sol.x.float(), ref, atol=1e-5, rtol=1e-5)


def test_read_trajectories_names_a_file_that_is_not_hdf5(tmp_path):
    from sciml.data.base import DataError
    from sciml.models.scot_train import read_trajectories

    bad = tmp_path / "traj.h5"
    bad.write_text("not an HDF5 file")
    with pytest.raises(DataError, match="traj.h5: cannot open as HDF5"):
        read_trajectories(bad)
    with pytest.raises(FileNotFoundError, match="no such HDF5 file"):
        read_trajectories(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="layout"):
        read_trajectories(bad, layout="XYZ")
