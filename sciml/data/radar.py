"""Synthetic 3-D extended radar targets, and noisy/clean magnitude pairs for training 3-D denoisers.

`extended_targets` draws a reflectivity magnitude on a voxel grid: boxes, ellipsoids and thin plates
at random positions and sizes, each with a smooth amplitude in [0.5, 1] (the union takes the
maximum). This is the kind of scene the near-field MIMO example images (`examples/mimo_pnp.py`) and
the kind of training data of the PnP-magnitude paper's 3-D denoiser (Oral & Oktem, IEEE TCI 2024).

Dataset kind "radar-targets" (`RadarTargets`): items `{"clean", "noisy", "sigma"}`, `clean` a scene
magnitude `(1, D, H, W)` with 1 to `max_targets` targets of random kinds, sigma uniform in
[sigma_min, sigma_max], and

- ``noise = "rician"`` (default): noisy = |clean e^{iφ} + σ (n₁ + i n₂)/√2| with a random phase φ,
  the magnitude of a complex reflectivity plus complex Gaussian error, which is what the magnitude
  prox of the PnP solvers hands to the denoiser (the speckle background included);
- ``noise = "gaussian"``: noisy = clean + σ n, the paper's training noise.

Item i depends only on (seed, split, i).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .noisy_pairs import NoisyPairs
from .synthetic import _register

TARGET_KINDS = ("box", "ellipsoid", "plate")


def extended_targets(voxels: Sequence[int], generator: torch.Generator,
                     kinds: Sequence[str] = ("box", "ellipsoid", "plate", "ellipsoid"),
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A reflectivity magnitude `voxels` (D, H, W) with one target per entry of `kinds`, on [-1, 1]³.

    Each target: a random centre (|x|, |y| <= 0.5, |z| <= 0.6), random half-sizes (boxes 0.15-0.35 x
    0.15-0.35 x 0.1-0.2, ellipsoids 0.15-0.4 x 0.15-0.4 x 0.1-0.25, plates 0.3-0.5 x 0.2-0.4 and one
    voxel deep) and an amplitude 0.75 + 0.25 cos(k . r + phase) with random k in [1, 4]³.
    """
    if len(voxels) != 3 or any(int(n) < 2 for n in voxels):
        raise ValueError(f"voxels must give three sizes >= 2, got {voxels!r}")
    unknown = set(kinds) - set(TARGET_KINDS)
    if unknown:
        raise ValueError(f"unknown target kinds {sorted(unknown)}; expected {', '.join(TARGET_KINDS)}")
    X, Y, Z = torch.meshgrid(*(torch.linspace(-1, 1, int(n), dtype=dtype) for n in voxels), indexing="ij")

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    mag = torch.zeros(tuple(int(n) for n in voxels), dtype=dtype)
    for kind in kinds:
        c = (u(-0.5, 0.5), u(-0.5, 0.5), u(-0.6, 0.6))
        d = [(X - c[0]).abs(), (Y - c[1]).abs(), (Z - c[2]).abs()]
        if kind == "box":
            mask = (d[0] < u(0.15, 0.35)) & (d[1] < u(0.15, 0.35)) & (d[2] < u(0.1, 0.2))
        elif kind == "ellipsoid":
            mask = (d[0] / u(0.15, 0.4)) ** 2 + (d[1] / u(0.15, 0.4)) ** 2 + (d[2] / u(0.1, 0.25)) ** 2 < 1
        else:  # a thin plate, about one voxel deep
            mask = (d[0] < u(0.3, 0.5)) & (d[1] < u(0.2, 0.4)) & (d[2] < 1.0 / int(voxels[2]))
        amp = 0.75 + 0.25 * torch.cos(u(1, 4) * X + u(1, 4) * Y + u(1, 4) * Z + u(0, 6))
        mag = torch.maximum(mag, mask * amp)
    return mag


class RadarTargets(NoisyPairs):
    """Noisy/clean pairs of synthetic target magnitudes (see the module docstring)."""

    what = "scenes"

    def __init__(self, voxels: Sequence[int] = (16, 16, 24), size: int = 10000, max_targets: int = 5,
                 sigma_min: float = 0.0, sigma_max: float = 0.2, noise: str = "rician", seed: int = 0,
                 split: str = "train"):
        super().__init__(size, sigma_min, sigma_max, seed, split)
        if not isinstance(max_targets, int) or max_targets < 1:
            raise ValueError(f"max_targets must be a positive integer, got {max_targets!r}")
        if noise not in ("rician", "gaussian"):
            raise ValueError(f"noise must be 'rician' or 'gaussian', got {noise!r}")
        self.voxels = tuple(int(n) for n in voxels)
        extended_targets(self.voxels, torch.Generator(), ())  # validates voxels
        self.max_targets, self.noise = max_targets, noise

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = self.generator(i)
        count = int(torch.randint(1, self.max_targets + 1, (1,), generator=g))
        kinds = [TARGET_KINDS[int(k)] for k in torch.randint(0, len(TARGET_KINDS), (count,), generator=g)]
        clean = extended_targets(self.voxels, g, kinds, torch.float32)[None]
        sigma = self.sigma(g)
        if self.noise == "gaussian":
            noisy = clean + sigma * torch.randn(clean.shape, generator=g)
        else:
            phase = 2 * math.pi * torch.rand(clean.shape, generator=g)
            n = torch.complex(torch.randn(clean.shape, generator=g), torch.randn(clean.shape, generator=g))
            noisy = (torch.polar(clean, phase) + sigma / math.sqrt(2) * n).abs()
        return {"clean": clean, "noisy": noisy, "sigma": torch.tensor(sigma, dtype=torch.float32)}


_register("radar-targets", RadarTargets)  # [data] options: the keyword arguments of `RadarTargets`
