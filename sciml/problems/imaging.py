"""Simulated imaging experiments: multi-coil MRI and sparse-view CT of a known image.

Each builder returns an `ImagingCase`: the `InverseProblem` to hand to any solver, the ground truth,
and `scores(x)` (PSNR/SSIM against the truth, data range 1). The examples, the benchmarks and the
`kind = "mri"` / `kind = "ct"` configs all build their problems here, so they measure the same thing.

    case = mri_case(load_image("datasets/mri/mni152_slices.h5", index=1, split="test_index"))
    x = sciml.solve(case.problem, "cg", maxiter=15).x
    case.scores(x)            # {"psnr": ..., "ssim": ...} of |x| against the magnitude image
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..metrics import psnr, ssim
from .inverse import InverseProblem

__all__ = ["ImagingCase", "ct_case", "load_image", "mri_case"]


@dataclass
class ImagingCase:
    """A simulated experiment.

    Attributes:
        problem: the `InverseProblem` (operator, measurements `y`, `noise_std`).
        truth: the unknown the data were simulated from, `(H, W)` (complex for MRI).
        reference: the real image reconstructions are scored against, `(H, W)` in [0, 1]
            (the magnitude for MRI).
        extras: what some reconstructions need: MRI `mask`, `maps`, `phase` (the low-resolution phase
            of the calibration lines, for real-valued priors); CT `angles`.
    """

    problem: InverseProblem
    truth: torch.Tensor
    reference: torch.Tensor
    extras: dict[str, Any] = field(default_factory=dict)

    def scores(self, x: torch.Tensor) -> dict[str, float]:
        """PSNR (dB) and SSIM of `x` `(H, W)` (its magnitude if complex) against `reference`."""
        x = x.detach().abs() if x.is_complex() else x.detach()
        ref = self.reference.to(device=x.device, dtype=x.dtype)
        return {"psnr": float(psnr(x, ref, 1.0)), "ssim": float(ssim(x, ref, 1.0))}


def load_image(source: str | Path, size: int | None = None, *, variable: str = "images", index: int = 0,
               split: str | None = None, device: Any = None) -> torch.Tensor:
    """A float64 image `(size, size)` in [0, 1]: ``"shepp-logan"`` (the modified phantom), or image
    `index` of the HDF5 dataset `variable` in the file `source` (with `split`, e.g. ``"test_index"``,
    `index` counts within that index list). Resampled by area averaging when `size` differs."""
    if str(source) == "shepp-logan":
        from ..operators.ct import shepp_logan

        return shepp_logan(size or 128, device=device)
    import h5py

    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"load_image: no such file {str(path)!r}")
    with h5py.File(path, "r") as f:
        for name in (variable, split):
            if name is not None and name not in f:
                raise KeyError(f"load_image: {path.name} has no dataset {name!r} (it has {', '.join(f)})")
        images = f[variable]
        if images.ndim != 3:
            raise ValueError(f"load_image: {path.name}:{variable} has shape {images.shape}, expected (N, H, W)")
        order = f[split][()] if split is not None else range(images.shape[0])
        if not 0 <= index < len(order):
            raise IndexError(f"load_image: index {index} out of range for {len(order)} images in {split or variable!r}")
        image = torch.from_numpy(images[int(order[index])]).double()
    if size is not None and size != image.shape[-1]:
        image = torch.nn.functional.interpolate(image[None, None], size=(size, size), mode="area")[0, 0]
    return image.to(device)


def _complex_noise(shape: torch.Size, gen: torch.Generator, device: Any) -> torch.Tensor:
    return torch.complex(torch.randn(shape, generator=gen, dtype=torch.float64, device=device),
                         torch.randn(shape, generator=gen, dtype=torch.float64, device=device))


def mri_case(magnitude: torch.Tensor, *, coils: int = 8, acceleration: float = 4.0, center_fraction: float = 0.08,
             noise: float = 0.005, estimate_maps: bool = False, seed: int = 0) -> ImagingCase:
    """Multi-coil Cartesian MRI of `magnitude` `(H, W)` times a smooth phase (as in real scans).

    Birdcage coil maps, random phase-encode lines with a fully sampled centre (`uniform_lines_mask`),
    complex Gaussian noise of std `noise * max|k|` on the sampled entries. With `estimate_maps` the
    operator uses maps estimated from the calibration lines instead of the true ones.
    """
    from ..operators.mri import (MultiCoilMRI, birdcage_sensitivities, calibration_phase, estimate_sensitivities,
                                 uniform_lines_mask)

    H, W = magnitude.shape
    device = magnitude.device
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H, dtype=torch.float64, device=device),
                            torch.linspace(-1, 1, W, dtype=torch.float64, device=device), indexing="ij")
    truth = magnitude.double() * torch.exp(1j * (0.5 * math.pi * (xx + 0.5 * yy)))
    maps = birdcage_sensitivities((H, W), coils, device=device)
    mask = uniform_lines_mask((H, W), acceleration, center_fraction, seed=seed).to(device)
    clean = MultiCoilMRI(maps, mask) @ truth
    scale = noise * float(clean.abs().max())
    y = clean + scale * _complex_noise(clean.shape, torch.Generator(device=device).manual_seed(seed), device) * mask
    if estimate_maps:
        maps = estimate_sensitivities(y, calib_size=(24, max(1, int(round(W * center_fraction)))), mask=mask)
    problem = InverseProblem(MultiCoilMRI(maps, mask), y, noise_std=scale)
    extras = {"mask": mask, "maps": maps, "phase": calibration_phase(y, mask, maps)}
    return ImagingCase(problem, truth, magnitude.double(), extras)


def ct_case(image: torch.Tensor, *, views: int = 60, noise: float = 0.01, seed: int = 0) -> ImagingCase:
    """Sparse-view parallel-beam CT of `image` `(H, W)`: `views` angles evenly spread over 180°,
    Gaussian noise of std `noise * max|sinogram|`."""
    from ..operators.ct import ParallelBeamRadon, sparse_view_angles

    device = image.device
    angles = sparse_view_angles(views, device=device)
    A = ParallelBeamRadon(tuple(image.shape), angles, device=device)
    clean = A @ image.double()
    scale = noise * float(clean.abs().max())
    gen = torch.Generator(device=device).manual_seed(seed)
    y = clean + scale * torch.randn(clean.shape, generator=gen, dtype=clean.dtype, device=device)
    return ImagingCase(InverseProblem(A, y, noise_std=scale), image.double(), image.double(), {"angles": angles})
