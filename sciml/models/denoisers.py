r"""A noise-level-conditioned residual CNN denoiser (DnCNN body, FFDNet/DRUNet-style noise map input),
its training data (random noisy patches of images in an HDF5 file) and its training loss.

`SigmaDnCNN` (registered "dncnn-sigma") maps a noisy image `y` and its noise standard deviation
:math:`\sigma` to :math:`D(y, \sigma) = y - f([y, \sigma\mathbf{1}])`: the map :math:`\sigma\mathbf{1}`
(times `sigma_scale`) is concatenated to the image as an extra input channel and the network `f`
(`depth` 3x3 convolutions, ReLU between, no batch norm) predicts the noise. One model covers every
noise level it was trained on, so it plugs into the PnP solvers as `denoiser=` with their `sigma`.

Inputs: `(B, C, H, W)`, or `(B, H, W)` / `(H, W)` when `channels = 1` (the output has the input's
shape); with `dim = 3` (3x3x3 convolutions, volumes) `(B, C, D, H, W)`, or `(B, D, H, W)` /
`(D, H, W)`. A complex image is denoised through its magnitude with its phase kept (the same as the
PnP solvers' `complex_mode = "magnitude"`). `sigma`: a number, a 0-d tensor, one value per image `(B,)`,
or a map broadcastable to `(B, 1, H, W)`; intensities are those of the training data (e.g. [0, 1]).
Inputs of another floating dtype than the weights (float64 images) are cast for the network and the
result is returned in the input's dtype.

Training pieces, registered on import:

- dataset kind "image-patches-hdf5": `{"clean", "noisy", "sigma"}` items, a random `patch` x `patch`
  window (with one of the 8 flips/rotations) of an image of an HDF5 dataset `(N, H, W)`, times an
  intensity gain uniform in `gain` = [min, max] (default [1, 1]: none), plus :math:`\sigma\,n`,
  :math:`\sigma` uniform in [sigma_min, sigma_max]; item i depends only on (seed, split, i). Images
  of a split are chosen by an index dataset of the file (`index`, e.g. "train_index") or all of them.
  With `phase_slope` > 0 the clean patch becomes complex, :math:`x e^{i\varphi}` with a random smooth
  phase :math:`\varphi = \varphi_0 + g_y u + g_x v + c\,(u^2 + v^2)` (pixel coordinates u, v from
  the patch centre, :math:`\varphi_0` uniform in [0, 2π), slopes uniform in ±`phase_slope` rad/pixel,
  curvature uniform in ±`phase_curvature` rad/pixel²), stored as 2 channels (real, imag): training
  data for a complex-image prior (an MRI image's phase is smooth).
- loss "sigma-denoising" (objective): mean squared (or `norm = "l1"`) error of
  `model(noisy, sigma)` against `clean`.

PnP helpers: `SigmaSchedule` (the noise level annealed over the solver's iterations, as DPIR) and,
for MRI, `phase_constrained` with `sciml.operators.mri.calibration_phase` (denoise the real part of the image after
removing a low-resolution phase from the calibration lines):

    D = phase_constrained(SigmaSchedule(model, 50 / 255, 6 / 255, 30), calibration_phase(y, mask, maps))
    sciml.solve(sciml.InverseProblem(A, y), "pnp-hqs", denoiser=D, rho=0.05, maxiter=30, rtol=0)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import make_builder
from ..data.noisy_pairs import NoisyPairs
from ..data.registry import register_dataset
from .nets import Conv3d, _positive
from .registry import register_model


@register_model("dncnn-sigma")
class SigmaDnCNN(nn.Module):
    """Residual CNN denoiser conditioned on the noise level (see the module docstring).

    Args:
        channels: image channels (1 for grey / magnitude images).
        width: feature channels of the hidden convolutions.
        depth: number of convolutions (>= 2).
        sigma_scale: the noise map fed to the network is `sigma * sigma_scale` (so it is O(1)).
        dim: 2 (images) or 3 (volumes).
    """

    def __init__(self, channels: int = 1, width: int = 48, depth: int = 10, sigma_scale: float = 5.0, dim: int = 2):
        super().__init__()
        _positive("channels", channels)
        _positive("width", width)
        _positive("depth", depth, 2)
        if not sigma_scale > 0:
            raise ValueError(f"sigma_scale must be > 0, got {sigma_scale!r}")
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        self.channels, self.sigma_scale, self.dim = channels, float(sigma_scale), dim
        conv = nn.Conv2d if dim == 2 else Conv3d
        layers: list[nn.Module] = [conv(channels + 1, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [conv(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(conv(width, channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        if sigma is None:
            raise ValueError("dncnn-sigma: the noise level sigma is required: model(x, sigma)")
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"dncnn-sigma: expected a tensor, got {type(x).__name__}")
        if x.is_complex():
            m = x.abs()
            return torch.polar(self.forward(m, sigma).to(m.dtype), x.angle())
        shape, d = x.shape, self.dim
        space = "(D, H, W)" if d == 3 else "(H, W)"
        if x.ndim == d + 2:
            if x.shape[1] != self.channels:
                raise ValueError(f"dncnn-sigma: expected {self.channels} channel(s) in an input (B, C, {space[1:]}, "
                                 f"got shape {tuple(shape)}")
            x4 = x
        elif x.ndim in (d, d + 1) and self.channels == 1:
            x4 = x.reshape((-1, 1) + tuple(shape[-d:]))
        else:
            want = f"(B, C, {space[1:]}" + (f", (B, {space[1:]} or {space}" if self.channels == 1 else "")
            raise ValueError(f"dncnn-sigma: expected an input {want} with C = {self.channels}, got shape {tuple(shape)}")
        B, spatial = x4.shape[0], tuple(x4.shape[2:])
        s = torch.as_tensor(sigma, dtype=x4.dtype, device=x4.device)
        if s.ndim == 1 and s.numel() == B:
            s = s.reshape((B,) + (1,) * (d + 1))
        elif s.ndim in (d, d + 1) and x.ndim != d + 2:  # a map (H, W) or (B, H, W) for a channel-less input
            s = s.reshape((-1, 1) + tuple(s.shape[-d:]))
        try:
            smap = torch.broadcast_to(s, (B, 1) + spatial)
        except RuntimeError:
            raise ValueError(f"dncnn-sigma: sigma of shape {tuple(s.shape)} does not broadcast to (B, 1, ...) = "
                             f"{(B, 1) + spatial}") from None
        wdtype = self.net[0].weight.dtype  # e.g. float64 images through a float32 model
        inp = torch.cat([x4, smap * self.sigma_scale], dim=1).to(wdtype)
        out = x4 - self.net(inp).to(x4.dtype)
        return out.reshape(shape)


class ImagePatches(NoisyPairs):
    """Noisy/clean patch pairs from images in an HDF5 file (see the module docstring)."""

    what = "patches"

    def __init__(self, path: str | Path, variable: str = "images", index: Any = None, size: int = 10000,
                 patch: int = 48, sigma_min: float = 0.0, sigma_max: float = 50.0 / 255.0, augment: bool = True,
                 seed: int = 0, split: str = "train", gain: Any = (1.0, 1.0), phase_slope: float = 0.0,
                 phase_curvature: float = 0.0):
        import h5py

        super().__init__(size, sigma_min, sigma_max, seed, split)
        _positive("patch", patch, 2)
        for key, value, unit in (("phase_slope", phase_slope, "rad/pixel"),
                                 ("phase_curvature", phase_curvature, "rad/pixel²")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{key}: expected a number >= 0 ({unit}), got {value!r}")
        if phase_curvature and not phase_slope:
            raise ValueError("phase_curvature needs phase_slope > 0 (a complex patch); got phase_slope = 0")
        self.phase_slope, self.phase_curvature = float(phase_slope), float(phase_curvature)
        try:
            lo, hi = (float(v) for v in gain)
        except (TypeError, ValueError):
            raise ValueError(f"gain: expected [min, max] intensity gains, got {gain!r}") from None
        if not 0.0 < lo <= hi:
            raise ValueError(f"gain: expected 0 < min <= max, got {[lo, hi]}")
        self.gain = (lo, hi)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such HDF5 file")
        with h5py.File(path, "r") as f:
            if variable not in f:
                raise ValueError(f"{path}: no dataset {variable!r}; datasets: {', '.join(f)}")
            images = np.asarray(f[variable], dtype=np.float32)
            if index is not None:
                if isinstance(index, str):
                    if index not in f:
                        raise ValueError(f"{path}: no index dataset {index!r}; datasets: {', '.join(f)}")
                    index = np.asarray(f[index])
                images = images[np.asarray(index, dtype=np.int64)]
        if images.ndim != 3 or min(images.shape[1:]) < patch:
            raise ValueError(f"{path}: {variable}: expected (N, H, W) images of at least {patch} x {patch}, "
                             f"got shape {images.shape}")
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.patch, self.augment = patch, augment

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = self.generator(i)
        n, H, W = self.images.shape
        p = self.patch
        k = int(torch.randint(0, n, (1,), generator=g))
        top = int(torch.randint(0, H - p + 1, (1,), generator=g))
        left = int(torch.randint(0, W - p + 1, (1,), generator=g))
        mode = int(torch.randint(0, 8, (1,), generator=g))
        sigma = self.sigma(g)
        x = self.images[k, top:top + p, left:left + p][None]
        if self.augment:
            x = torch.rot90(x, mode % 4, dims=(-2, -1))
            if mode >= 4:
                x = x.flip(-1)
        noise = sigma * torch.randn(x.shape, generator=g)
        lo, hi = self.gain
        if (lo, hi) != (1.0, 1.0):  # a random intensity gain of the clean patch (the noise level stays sigma)
            x = x * (lo + (hi - lo) * float(torch.rand((), generator=g)))
        if self.phase_slope:
            x = self._random_phase(x, g)
            noise = torch.cat((noise, sigma * torch.randn(noise.shape, generator=g)))
        noisy = x + noise
        return {"clean": x.contiguous(), "noisy": noisy, "sigma": torch.tensor(sigma, dtype=torch.float32)}

    def _random_phase(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """`(1, p, p)` magnitude -> `(2, p, p)` (real, imag) of it times a random smooth phase."""
        u = torch.arange(self.patch, dtype=torch.float32) - (self.patch - 1) / 2
        phi0, gy, gx, c = (2 * torch.rand(4, generator=g) - 1).tolist()
        phi = (math.pi * (phi0 + 1) + self.phase_slope * (gy * u[:, None] + gx * u[None, :])
               + self.phase_curvature * c * (u[:, None] ** 2 + u[None, :] ** 2))
        return torch.cat((x * torch.cos(phi), x * torch.sin(phi)))


# [data] kind = "image-patches-hdf5": `path` (relative to the config; an absolute one stays as it is) and
# the keyword arguments of `ImagePatches`
register_dataset("image-patches-hdf5")(make_builder(ImagePatches, "image-patches-hdf5"))


def _register_loss() -> None:
    from ..training.losses import LOSSES, register_loss

    if "sigma-denoising" in LOSSES:
        return

    @register_loss("sigma-denoising", objective=True)
    def sigma_denoising(model: nn.Module, batch: Any, norm: str = "l2") -> torch.Tensor:
        """Error of `model(noisy, sigma)` against `clean`: mean squared ("l2") or absolute ("l1")."""
        if norm not in ("l2", "l1"):
            raise ValueError(f"sigma-denoising: norm must be 'l2' or 'l1', got {norm!r}")
        pred = model(batch["noisy"], batch["sigma"])
        return F.mse_loss(pred, batch["clean"]) if norm == "l2" else F.l1_loss(pred, batch["clean"])


_register_loss()


class SigmaSchedule:
    r"""A denoiser whose strength is annealed over the calls, for the PnP solvers (as DPIR, Zhang et al.
    2021): call k (0-based) uses :math:`\sigma_k = \sigma_0 (\sigma_1/\sigma_0)^{k/(n-1)}`, geometric from
    `sigma_start` to `sigma_end` over `steps` calls, then `sigma_end`. The solver's own `sigma` is
    ignored. It counts its calls: make a new one (or call `reset()`) for every solve.
    """

    def __init__(self, denoiser: Any, sigma_start: float, sigma_end: float, steps: int):
        _positive("steps", steps)
        if not (sigma_start > 0 and sigma_end > 0):
            raise ValueError(f"sigma_start and sigma_end must be > 0, got {sigma_start}, {sigma_end}")
        self.denoiser = denoiser
        r = (sigma_end / sigma_start) ** (1.0 / max(steps - 1, 1))
        self.sigmas = [sigma_start * r**k for k in range(steps)]
        self.calls = 0

    def reset(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        s = self.sigmas[min(self.calls, len(self.sigmas) - 1)]
        self.calls += 1
        return self.denoiser(x, s)


def phase_constrained(denoiser: Any, phase: torch.Tensor, refresh: float | None = None) -> Any:
    r"""A complex-image denoiser from a real one with a known (e.g. low-resolution) phase :math:`\varphi`:
    :math:`x \mapsto e^{i\varphi} D(\mathrm{Re}(e^{-i\varphi}x), \sigma)`; the imaginary part after
    demodulation is set to zero (a phase constraint). Unlike denoising the magnitude, the demodulated
    real part keeps noise and aliasing zero-mean, as in the Gaussian noise the denoiser was trained on.
    With `refresh` = s the phase is re-estimated at every call from the input smoothed over s pixels
    (`sciml.operators.mri.smoothed_phase`, `phase` kept where the image is dark).
    """
    from ..operators.mri import smoothed_phase

    rot = torch.exp(1j * phase) if not phase.is_complex() else phase / phase.abs().clamp_min(1e-30)

    def denoise(x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        r0 = rot if refresh is None else smoothed_phase(x, refresh, rot.to(x.dtype))
        r = (x * r0.conj()).real
        return r0 * denoiser(r, sigma).to(r.dtype)

    return denoise


def clipped(denoiser: Any, low: float = 0.0, high: float = 1.0) -> Any:
    """`denoiser` followed by the projection onto [low, high] (the images' range), for PnP with a prior
    that is unstable outside the data range, e.g. the CPU-trained LPN (see benchmarks/lpn_check.py)."""

    def denoise(x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        return (denoiser(x) if sigma is None else denoiser(x, sigma)).clamp(low, high)

    return denoise

