"""A held-out Navier-Stokes case for solvers/lsm-ns.toml -> datasets/ns/case_v1e-5.h5.

    python datasets/ns/make_case.py [--seed 1] [--index 0]

One trajectory of our Navier-Stokes generator with the settings of datasets/ns_v1e-5.toml (vorticity on
the unit torus, nu = 1e-5, FNO's forcing and initial GRF, 64 x 64, dt = 1e-4, snapshots at t = 1, ..., 20)
but seed 1, so it is none of the seed-0 trajectories the shipped models trained or were validated on.
Datasets, float32: `history` (10, 64, 64), the vorticity at t = 1..10 (the model's input), and `future`
(10, 64, 64), the vorticity at t = 11..20 (the reference for the rollout); nodes x_i = i/64. Written to a
temporary file and renamed. About 10 s on one CPU thread.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

from sciml._io import atomic_path
from sciml.data.generators.navier_stokes import NavierStokesGenerator

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1, help="generator seed (the training data uses 0)")
    ap.add_argument("--index", type=int, default=0, help="trajectory index within that seed's stream")
    ap.add_argument("--out", default=str(HERE / "case_v1e-5.h5"))
    args = ap.parse_args(argv)
    gen = NavierStokesGenerator(resolution=64, viscosity=1e-5, T=20.0, dt=1e-4, record_steps=20)
    u = np.moveaxis(gen.generate([args.index], seed=args.seed)["u"][0], -1, 0).astype("float32")  # (20, 64, 64)
    with atomic_path(args.out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("history", data=u[:10])
        f.create_dataset("future", data=u[10:])
        f.attrs.update(seed=args.seed, index=args.index, generator="navier-stokes", viscosity=1e-5,
                       grid="nodes x_i = i/64, i = 0..63 on both axes (axis 0 = x, axis 1 = y), periodic",
                       times="history: t = 1..10, future: t = 11..20")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
