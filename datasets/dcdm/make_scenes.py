"""Write the shipped held-out scenes of solvers/dcdm-pressure2d.toml and solvers/dcdm-pressure3d.toml.

Each scene is random obstacles in a box with walls and air above (`sciml.data.generators.dcdm.scene`,
drawn with seeds no training set uses) and the right-hand side -h div u* (unit norm) of a random smooth
velocity field, as in a smoke simulation's pressure projection (`sciml.data.generators.dcdm.random_divergence`):

    python datasets/dcdm/make_scenes.py      # scene2d-flags.npy, scene2d-rhs.npy, scene3d-flags.npy, scene3d-rhs.npy
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sciml._io import atomic_path
from sciml.data.generators import sample_generator
from sciml.data.generators.dcdm import random_divergence, scene

HERE = Path(__file__).resolve().parent

SCENES = {"scene2d": (2, 64, 4242), "scene3d": (3, 64, 4243)}


def main() -> None:
    for name, (dim, n, seed) in SCENES.items():
        g = sample_generator(seed, 0)
        flags = scene(dim, n, g, min_solids=3, max_solids=4, min_size=0.08, max_size=0.2, free_surface=0.0)
        rhs = random_divergence(flags, g).numpy().astype(np.float32)
        for suffix, array in (("flags", flags.astype(np.uint8)), ("rhs", rhs)):
            with atomic_path(HERE / f"{name}-{suffix}.npy") as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, array)
        print(f"{name}: {flags.shape}, {int((flags == 0).sum())} fluid cells, {int((flags == 1).sum())} solid")


if __name__ == "__main__":
    main()
