"""A held-out Darcy case for solvers/lsm-darcy.toml -> datasets/darcy/case_r85.h5.

    python datasets/darcy/make_case.py [--seed 1] [--index 0]

One sample of our Darcy generator with the settings of datasets/darcy_r85.toml (85 x 85 nodes including the
boundary, a in {12, 3} from a thresholded GRF, f = 1, u = 0 on the boundary, PCG to rtol 1e-8) but seed 1,
so it is none of the seed-0 samples the shipped models trained or were validated on. Datasets `coeff`
(the permeability a) and `sol` (the solution u), float32 (85, 85), nodes x_i = i/84. Written to a
temporary file and renamed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import h5py

from sciml._io import atomic_path
from sciml.data.generators.darcy import DarcyGenerator

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1, help="generator seed (the training data uses 0)")
    ap.add_argument("--index", type=int, default=0, help="sample index within that seed's stream")
    ap.add_argument("--out", default=str(HERE / "case_r85.h5"))
    args = ap.parse_args(argv)
    sample = DarcyGenerator(resolution=85).generate([args.index], seed=args.seed)
    with atomic_path(args.out) as tmp, h5py.File(tmp, "w") as f:
        for name in ("coeff", "sol"):
            f.create_dataset(name, data=sample[name][0].astype("float32"))
        f.attrs.update(seed=args.seed, index=args.index, generator="darcy", resolution=85,
                       grid="nodes x_i = i/84, i = 0..84 on both axes (axis 0 = x, axis 1 = y)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
